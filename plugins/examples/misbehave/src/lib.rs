//! A compaction filter that misbehaves on purpose, chosen by the `mode` setting:
//! `loop` (never returns), `trap` (panics), `hog` (allocates without end) or `short`
//! (answers for fewer records than it was given). caskade must contain all of them.

use caskade_plugin_sdk::{
    CompactionFilter, PluginError, RecordInfo, Settings, Verdict, export_compaction_filter, setting,
};

enum Mode {
    Loop,
    Trap,
    Hog,
    Short,
}

struct Misbehave(Mode);

impl CompactionFilter for Misbehave {
    fn init(settings: &Settings) -> Result<Self, PluginError> {
        let mode = match setting(settings, "mode").unwrap_or("trap") {
            "loop" => Mode::Loop,
            "trap" => Mode::Trap,
            "hog" => Mode::Hog,
            "short" => Mode::Short,
            other => {
                return Err(PluginError::InvalidSettings(format!(
                    "mode: unknown '{other}'"
                )));
            }
        };
        Ok(Misbehave(mode))
    }

    fn filter(&mut self, records: &[RecordInfo], _now_ms: u64) -> Vec<Verdict> {
        match self.0 {
            Mode::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Mode::Trap => panic!("misbehave: trap on purpose"),
            Mode::Hog => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::Short => records.iter().skip(1).map(|_| Verdict::Keep).collect(),
        }
    }
}

export_compaction_filter!(Misbehave);
