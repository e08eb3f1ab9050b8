//! The SDK carries its own copy of the plugin interfaces (so it builds outside this
//! repository); it must be the WIT the host implements, byte for byte.

#[test]
fn the_sdk_wit_is_the_hosts_wit() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let host = std::path::Path::new(root).join("wit");
    let sdk = std::path::Path::new(root).join("plugins/sdk/wit");
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&host),
        names(&sdk),
        "the same files in wit/ and plugins/sdk/wit/"
    );
    for name in names(&host) {
        let a = std::fs::read(host.join(&name)).expect("read");
        let b = std::fs::read(sdk.join(&name)).expect("read");
        assert!(
            a == b,
            "plugins/sdk/wit/{name} differs from wit/{name}: copy wit/ into the SDK"
        );
    }
}
