//! From bbackupd.conf ([`BackupdConfig`]) to what a run needs ([`Setup`]).
//!
//! Must not know: the file's syntax (config's) or how a run goes.

use std::path::Path;

use super::Settings;
use super::runner::Setup;
use crate::config::BackupdConfig;

/// Loads and checks `path` (for the runner: at start and at every reload).
pub fn load(path: &Path) -> Result<Setup, String> {
    let c = BackupdConfig::load(path).map_err(|e| e.to_string())?;
    from_config(&c, path)
}

/// The settings of `c`, read from `path`.
pub fn from_config(c: &BackupdConfig, path: &Path) -> Result<Setup, String> {
    let remote = c.remote_config(false).map_err(|e| e.to_string())?;
    let keys = c.keys().map_err(|e| e.to_string())?;
    let options = c.sync_options();
    Ok(Setup {
        settings: Settings {
            config_path: path.to_path_buf(),
            automatic_backup: c.automatic_backup,
            update_store_interval: c.update_store_interval,
            minimum_file_age: c.minimum_file_age,
            max_upload_wait: c.max_upload_wait,
            backup_error_delay: c.backup_error_delay,
            notify_script: c.notify_script.clone(),
            notify_always: c.notify_all,
            sync_allow_script: c.sync_allow_script.clone(),
            command_socket: c.command_socket.clone(),
            pid_file: c.pid_file.clone(),
            data_directory: c.data_directory.clone(),
            store_object_info_file: c.store_object_info_file.clone(),
            status_file: Some(c.status_file_path()),
            metrics_listen_address: c.metrics_listen_address,
        },
        remote,
        keys,
        options,
        extended_logging: c.extended_logging,
        extended_log_file: c.extended_log_file.clone(),
        log_all_file_access: c.log_all_file_access,
    })
}
