//! The privileged stage: everything that needs root or touches keys, done
//! before any network input is read.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admin;
use crate::config::Config;
use crate::control;
use crate::datadir::DataDir;
use crate::jail;
use crate::privilege::Privileged;
use crate::settings;
use crate::smtp::{self, Kind};
use crate::store::Store;
use crate::tls;

/// What the privileged stage opened, handed to `Jailed` as is.
pub(super) struct Opened {
    pub cfg: Config,
    pub data: Arc<DataDir>,
    pub hostname: String,
    pub tls_config: Arc<rustls::ServerConfig>,
    pub certs: Arc<tls::Certs>,
    pub delivery: crate::delivery::Prepared,
    pub store: Arc<Store>,
    /// Disconnects once `store` is closed clean (`Store::close_signal`).
    pub store_closed: Option<std::sync::mpsc::Receiver<()>>,
    pub settings: settings::Shared,
    /// The shared store's CA (read while privileged), when configured.
    pub fleet: Option<Vec<u8>>,
    pub screener: smtp::Screener,
    pub listeners: Vec<(TcpListener, Kind)>,
    pub admin_listeners: Vec<TcpListener>,
    pub control_listener: UnixListener,
    pub socket: PathBuf,
}

/// The result of the privileged stage: the opened handles, plus what is
/// still needed to leave it (the one `Privileged`, the landlock ruleset
/// built while root, the syslog sender to start once unprivileged).
pub struct Resources {
    pub(super) root: Privileged,
    pub(super) ruleset: Option<landlock::RulesetCreated>,
    pub(super) syslog: Option<crate::appliance::syslog::Prepared>,
    pub(super) opened: Opened,
}

/// The store file's name in the data directory (`Config::store_path`).
const STORE_FILE: &str = "outguard.redb";

impl Privileged {
    /// Stage 1 of `outguard serve`: starts the privileged stage (once per
    /// process) and opens everything that needs root or touches keys.
    pub fn prepare(cfg: Config) -> Result<Resources, String> {
        let root = Privileged::begin(&cfg.run_user)?;
        let data = Arc::new(root.prepare_dir(&cfg.data_dir)?);
        let hostname = cfg.hostname();
        let (tls_config, certs) = tls::load(&root, &cfg, &data, &hostname)?;
        // Smarthost password and CA file may be readable by root only.
        let delivery = crate::delivery::Prepared::load(&root, &cfg.delivery, &cfg.data_dir)?;
        // The collector's CA file may be readable by root only.
        let syslog = crate::appliance::syslog::Prepared::load(&root, &cfg.log)?;
        let store_path = cfg.store_path();
        let store_file = data.open_file(Path::new(STORE_FILE), true)?;
        let mut store = Store::open_file(store_file, cfg.store_cache_mib.max(1) << 20)
            .map_err(|e| format!("{}: {e}", store_path.display()))?;
        let store_closed = store.close_signal();
        let store = Arc::new(store);
        store.set_min_free(cfg.store.min_free_mib.saturating_mul(1 << 20));
        admin::provision(&store, &cfg)?;
        let settings = settings::Shared::new(store.settings().map_err(|e| e.to_string())?)?;
        // The fleet's CA file may be readable by root only.
        let fleet = match &cfg.store.shared {
            None => None,
            Some(_) => Some(crate::store::fleet::url::ca_pem(
                cfg.store.shared_ca.as_deref(),
            )?),
        };
        // Signatures and a retrained model are read now, while privileged.
        let screener = smtp::Screener::new(&cfg.scan, &cfg.data_dir)?;

        let mut listeners = Vec::new();
        let groups = [
            (&cfg.smtp.submission, Kind::Submission),
            (&cfg.smtp.submissions, Kind::Submissions),
            (&cfg.smtp.plain, Kind::Plain),
        ];
        for (addrs, kind) in groups {
            for addr in addrs {
                listeners.push((root.bind_tcp(*addr, "")?, kind));
            }
        }
        let admin_listeners = cfg
            .admin
            .listen
            .iter()
            .map(|a| root.bind_tcp(*a, " (admin)"))
            .collect::<Result<Vec<_>, _>>()?;
        let socket = cfg.control_socket();
        let control_listener = control::bind(&root, &data, &socket)?;

        let ruleset = if cfg.hardening.landlock {
            Some(jail::prepare_landlock(
                &root,
                &cfg.data_dir,
                &jail::outbound_ports(&cfg),
            )?)
        } else {
            None
        };
        Ok(Resources {
            root,
            ruleset,
            syslog,
            opened: Opened {
                cfg,
                data,
                hostname,
                tls_config,
                certs,
                delivery,
                store,
                store_closed: Some(store_closed),
                settings,
                fleet,
                screener,
                listeners,
                admin_listeners,
                control_listener,
                socket,
            },
        })
    }
}
