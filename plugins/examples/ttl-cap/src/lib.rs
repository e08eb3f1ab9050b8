//! A compaction filter that caps TTLs: every key compaction copies ends up expiring no
//! later than `max_ttl_secs` after the copy (keys without a TTL get one). Keys whose
//! prefix is listed in `drop_prefixes` (comma-separated) are removed instead.

use caskade_plugin_sdk::{
    CompactionFilter, PluginError, RecordInfo, Settings, Verdict, export_compaction_filter, setting,
};

struct TtlCap {
    max_ttl_ms: u64,
    drop_prefixes: Vec<Vec<u8>>,
}

impl CompactionFilter for TtlCap {
    fn init(settings: &Settings) -> Result<Self, PluginError> {
        let secs = setting(settings, "max_ttl_secs").unwrap_or("3600");
        let secs: u64 = secs.parse().map_err(|_| {
            PluginError::InvalidSettings(format!("max_ttl_secs: '{secs}' is not a number"))
        })?;
        let drop_prefixes = setting(settings, "drop_prefixes")
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Ok(TtlCap {
            max_ttl_ms: secs.saturating_mul(1000),
            drop_prefixes,
        })
    }

    fn filter(&mut self, records: &[RecordInfo], now_ms: u64) -> Vec<Verdict> {
        let cap = now_ms.saturating_add(self.max_ttl_ms);
        records
            .iter()
            .map(|r| {
                if self.drop_prefixes.iter().any(|p| r.key.starts_with(p)) {
                    Verdict::Remove
                } else if r.expire_at_ms.is_none_or(|e| e > cap) {
                    Verdict::SetExpiry(Some(cap))
                } else {
                    Verdict::Keep
                }
            })
            .collect()
    }
}

export_compaction_filter!(TtlCap);
