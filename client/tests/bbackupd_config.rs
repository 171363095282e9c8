//! Our `bbackupd-config` binary end to end: the files it writes load with our
//! `BackupdConfig::load`, its request is for `BACKUP-<account>`; and, where the
//! real 0.13 is installed, it prints and writes what 0.13's script does, and 0.13's
//! bbackupd accepts the written file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bb_client::config::BackupdConfig;

const OURS: &str = env!("CARGO_BIN_EXE_bbackupd-config");
const REAL: &str = "/usr/sbin/bbackupd-config";
const REAL_BBACKUPD: &str = "/usr/sbin/bbackupd";

fn run(tool: &str, root: &Path, mode: &str) -> Output {
    Command::new(tool)
        .arg(root.join("etc"))
        .arg(mode)
        .arg("1234567")
        .arg("localhost")
        .arg(root.join("var"))
        .arg(root.join("home"))
        .arg(root)
        .env_remove("OPENSSL_CONF")
        .output()
        .unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    std::fs::create_dir(root.join("home")).unwrap();
    (t, root)
}

#[test]
fn writes_a_config_that_loads() {
    let (_t, root) = setup();
    let out = run(OURS, &root, "lazy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("bbackupd basic configuration complete."));
    assert!(stdout.contains("NOTE: Keys file has been explicitly excluded"));

    let sub = root.join("etc/bbackupd");
    let keys = std::fs::read(sub.join("1234567-FileEncKeys.raw")).unwrap();
    assert_eq!(keys.len(), 1024);
    assert_ne!(keys, vec![0u8; 1024]);
    let csr =
        bb_proto::pki::issue::Csr::parse(&std::fs::read(sub.join("1234567-csr.pem")).unwrap())
            .unwrap();
    assert_eq!(csr.common_name.as_deref(), Some("BACKUP-1234567"));
    bb_proto::pki::issue::key_from_pem(&std::fs::read(sub.join("1234567-key.pem")).unwrap())
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(sub.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("1234567-key.pem"), 0o600);
    assert_eq!(mode("1234567-FileEncKeys.raw"), 0o600);
    assert_eq!(mode("NotifySysadmin.sh"), 0o700);

    let c = BackupdConfig::load(&root.join("etc/bbackupd.conf")).unwrap();
    assert_eq!(c.account_number, 0x1234567);
    assert_eq!(c.store_hostname, "localhost");
    assert!(c.automatic_backup);
    assert_eq!(c.update_store_interval, Duration::from_secs(3600));
    assert_eq!(c.minimum_file_age, Duration::from_secs(21600));
    assert_eq!(c.max_upload_wait, Duration::from_secs(86400));
    assert_eq!(c.keep_alive_time, Some(Duration::from_secs(120)));
    assert_eq!(c.data_directory, root.join("var"));
    assert!(root.join("var").is_dir());
    assert_eq!(c.keys().unwrap().raw()[..], keys[..]);
    assert_eq!(c.locations.len(), 2);
    assert_eq!(c.locations[0].path, root.join("home"));
    let keys_path = sub.join("1234567-FileEncKeys.raw");
    assert!(c.locations[1].excludes.is_file_excluded(&keys_path));
    assert!(!c.locations[0].excludes.is_file_excluded(&keys_path));

    // A second run keeps the key, the request and the keys file.
    let again = run(OURS, &root, "snapshot");
    assert!(again.status.success(), "{again:?}");
    assert!(!String::from_utf8_lossy(&again.stdout).contains("Generating"));
    assert_eq!(std::fs::read(&keys_path).unwrap(), keys);
    let c = BackupdConfig::load(&root.join("etc/bbackupd.conf")).unwrap();
    assert!(!c.automatic_backup);
    assert_eq!(c.update_store_interval, Duration::ZERO);
}

#[test]
fn refuses_what_0_13_refuses() {
    let (_t, root) = setup();
    let status = |args: &[&str]| {
        let o = Command::new(OURS).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let etc = root.join("etc").display().to_string();
    let var = root.join("var").display().to_string();
    let (c, out) = status(&["a", "b"]);
    assert_eq!(c, Some(1));
    assert!(out.contains("Usage:"));
    let (c, out) = status(&[&etc, "sometimes", "1", "localhost", &var]);
    assert_eq!(c, Some(1));
    assert!(out.contains("ERROR: backup mode must be 'lazy' or 'snapshot'"));
    let (c, _) = status(&[&etc, "lazy", "1", "localhost", "var"]);
    assert_eq!(c, Some(1));
    assert_eq!(
        status(&[&etc, "lazy", "1", "localhost", &var, "/"]).0,
        Some(255)
    );
    assert_eq!(
        status(&[&etc, "lazy", "1", "localhost", &var, "/nonexistent/x"]).0,
        Some(2)
    );
    assert!(
        !root.join("etc").exists(),
        "nothing written after a refusal"
    );
}

/// Same stdout and bbackupd.conf as 0.13's script, for the same arguments and
/// paths; the notify script differs only where 0.13 writes a broken command.
#[test]
fn same_output_and_files_as_0_13() {
    if !Path::new(REAL).exists() {
        eprintln!("SKIPPED: {REAL} is not installed");
        return;
    }
    let (_t, root) = setup();
    for mode in ["lazy", "snapshot"] {
        let real = run(REAL, &root, mode);
        assert!(real.status.success(), "{real:?}");
        let real_conf = std::fs::read(root.join("etc/bbackupd.conf")).unwrap();
        let real_notify =
            std::fs::read_to_string(root.join("etc/bbackupd/NotifySysadmin.sh")).unwrap();
        std::fs::remove_dir_all(root.join("etc")).unwrap();
        std::fs::remove_dir_all(root.join("var")).unwrap();

        let ours = run(OURS, &root, mode);
        assert!(ours.status.success(), "{ours:?}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&real.stdout)
        );
        let conf = std::fs::read(root.join("etc/bbackupd.conf")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&conf),
            String::from_utf8_lossy(&real_conf)
        );
        let notify = std::fs::read_to_string(root.join("etc/bbackupd/NotifySysadmin.sh")).unwrap();
        let norm = |s: &str| s.replace("sendmail: $SENDTO", "sendmail $SENDTO");
        assert_eq!(norm(&notify), norm(&real_notify));

        if Path::new(REAL_BBACKUPD).exists() {
            // 0.13's bbackupd verifies the whole file before it loads the
            // (not yet signed) certificate, and then stops.
            let o = Command::new(REAL_BBACKUPD)
                .arg("-F")
                .arg("-c")
                .arg(root.join("etc/bbackupd.conf"))
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!text.contains("Error verifying configuration"), "{text}");
            assert!(text.contains("loading certificates"), "{text}");
        }
        std::fs::remove_dir_all(root.join("etc")).unwrap();
        std::fs::remove_dir_all(root.join("var")).unwrap();
    }
}
