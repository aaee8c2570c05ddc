//! Windows: the SCM-backed [`ServiceManager`] and the service-main dispatcher that lets
//! `agent.exe run` run as a real service and stop cleanly.

use std::ffi::OsString;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState as WinState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager as Scm, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::scm::ScmParameters;
use crate::{ServiceError, ServiceManager, ServiceSpec, ServiceState};

const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;

/// How long stop waits for the service to report `Stopped`.
const STOP_TIMEOUT: Duration = Duration::from_secs(35);

fn os_code(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

fn scm_err(e: windows_service::Error) -> ServiceError {
    if os_code(&e) == Some(ERROR_ACCESS_DENIED) {
        ServiceError::NotPrivileged
    } else {
        ServiceError::Scm(e.to_string())
    }
}

/// The agent's service under the Windows SCM.
#[derive(Debug, Clone)]
pub struct ScmManager {
    params: ScmParameters,
}

impl ScmManager {
    /// Manages `spec` as an SCM service.
    pub fn new(spec: ServiceSpec) -> Self {
        Self {
            params: ScmParameters::for_spec(&spec),
        }
    }

    fn scm(&self, access: ServiceManagerAccess) -> Result<Scm, ServiceError> {
        Scm::local_computer(None::<&str>, access).map_err(scm_err)
    }

    /// Opens the service; `Ok(None)` when it is not registered.
    fn open(&self, access: ServiceAccess) -> Result<Option<Service>, ServiceError> {
        let scm = self.scm(ServiceManagerAccess::CONNECT)?;
        match scm.open_service(&self.params.name, access) {
            Ok(s) => Ok(Some(s)),
            Err(e) if os_code(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => Ok(None),
            Err(e) => Err(scm_err(e)),
        }
    }

    fn open_existing(&self, access: ServiceAccess) -> Result<Service, ServiceError> {
        self.open(access)?.ok_or_else(|| {
            ServiceError::Scm(format!("service {} is not installed", self.params.name))
        })
    }

    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            name: OsString::from(&self.params.name),
            display_name: OsString::from(&self.params.display_name),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: self.params.executable.clone(),
            launch_arguments: self.params.args.iter().map(OsString::from).collect(),
            dependencies: Vec::new(),
            account_name: self.params.account.as_ref().map(OsString::from),
            account_password: None,
        }
    }

    fn configure(&self, service: &Service) -> Result<(), ServiceError> {
        let p = &self.params;
        service.set_description(&p.description).map_err(scm_err)?;
        service.set_delayed_auto_start(true).map_err(scm_err)?;
        service
            .set_preshutdown_timeout(p.preshutdown_timeout)
            .map_err(scm_err)?;
        let actions = p
            .failure
            .restart_delays
            .iter()
            .map(|&delay| ServiceAction {
                action_type: ServiceActionType::Restart,
                delay,
            })
            .collect();
        service
            .update_failure_actions(ServiceFailureActions {
                reset_period: ServiceFailureResetPeriod::After(p.failure.reset_after),
                reboot_msg: None,
                command: None,
                actions: Some(actions),
            })
            .map_err(scm_err)?;
        service
            .set_failure_actions_on_non_crash_failures(p.failure.on_non_crash_failures)
            .map_err(scm_err)
    }

    fn stop_and_wait(&self, service: &Service) -> Result<(), ServiceError> {
        match service.stop() {
            Ok(_) => {}
            Err(e) if os_code(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => return Ok(()),
            Err(e) => return Err(scm_err(e)),
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let status = service.query_status().map_err(scm_err)?;
            if status.current_state == WinState::Stopped {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ServiceError::Scm(format!(
                    "service {} did not stop within {}s",
                    self.params.name,
                    STOP_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn start_service(service: &Service) -> Result<(), ServiceError> {
        match service.start::<&str>(&[]) {
            Err(e) if os_code(&e) != Some(ERROR_SERVICE_ALREADY_RUNNING) => Err(scm_err(e)),
            _ => Ok(()),
        }
    }
}

impl ServiceManager for ScmManager {
    fn kind(&self) -> &'static str {
        "scm"
    }

    /// Opening the SCM with the right to create services is the reliable "are we an elevated
    /// Administrator" test (a UAC-filtered token gets access denied).
    fn check_available(&self) -> Result<(), ServiceError> {
        self.scm(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)
            .map(drop)
    }

    fn install(&self) -> Result<(), ServiceError> {
        let access = ServiceAccess::CHANGE_CONFIG
            | ServiceAccess::START
            | ServiceAccess::STOP
            | ServiceAccess::QUERY_STATUS;
        let service = match self.open(access)? {
            Some(existing) => {
                // Forced reinstall: stop the old process so the new binary runs.
                self.stop_and_wait(&existing)?;
                existing.change_config(&self.info()).map_err(scm_err)?;
                existing
            }
            None => self
                .scm(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
                .create_service(&self.info(), access)
                .map_err(scm_err)?,
        };
        self.configure(&service)?;
        Self::start_service(&service)
    }

    fn uninstall(&self) -> Result<(), ServiceError> {
        let access = ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE;
        let Some(service) = self.open(access)? else {
            return Ok(());
        };
        self.stop_and_wait(&service)?;
        service.delete().map_err(scm_err)
    }

    fn start(&self) -> Result<(), ServiceError> {
        Self::start_service(&self.open_existing(ServiceAccess::START)?)
    }

    fn stop(&self) -> Result<(), ServiceError> {
        let service = self.open_existing(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
        self.stop_and_wait(&service)
    }

    fn restart(&self) -> Result<(), ServiceError> {
        let service = self.open_existing(
            ServiceAccess::START | ServiceAccess::STOP | ServiceAccess::QUERY_STATUS,
        )?;
        self.stop_and_wait(&service)?;
        Self::start_service(&service)
    }

    fn status(&self) -> Result<ServiceState, ServiceError> {
        let Some(service) = self.open(ServiceAccess::QUERY_STATUS)? else {
            return Ok(ServiceState::NotInstalled);
        };
        let status = service.query_status().map_err(scm_err)?;
        Ok(match status.current_state {
            WinState::Running => ServiceState::Running,
            WinState::Stopped => ServiceState::Stopped,
            other => ServiceState::Other(format!("{other:?}")),
        })
    }

    fn registration_files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

/// The agent's body when run by the SCM: runs until a message arrives on (or the sender of)
/// the receiver, then returns the process exit code (0 for a clean stop).
pub type ServiceBody = fn(mpsc::Receiver<()>) -> u32;

static BODY: OnceLock<ServiceBody> = OnceLock::new();

/// Whether [`run_dispatcher`] ran the service or found no SCM to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// The SCM started this process; the service ran and has stopped.
    RanAsService,
    /// Started from a console, not by the SCM: the caller should run in the foreground.
    NotAService,
}

/// Hands the process to the SCM's dispatcher, which calls `body` on a service thread and
/// reports Running / StopPending / Stopped. Call it first thing in `agent run`; it blocks
/// until the service stops.
pub fn run_dispatcher(body: ServiceBody) -> Result<Dispatch, ServiceError> {
    // A second call in one process keeps the first body: the dispatcher runs once anyway.
    let _ = BODY.set(body);
    match service_dispatcher::start(crate::SERVICE_NAME, ffi_service_main) {
        Ok(()) => Ok(Dispatch::RanAsService),
        Err(e) if os_code(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => {
            Ok(Dispatch::NotAService)
        }
        Err(e) => Err(scm_err(e)),
    }
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    // Nothing useful can be reported from here if the SCM handshake itself fails: the
    // SCM then marks the start as failed, and its failure actions apply.
    let _ = run_service();
}

fn status(
    state: WinState,
    accept: ServiceControlAccept,
    exit: u32,
    wait: Duration,
) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: if exit == 0 {
            ServiceExitCode::NO_ERROR
        } else {
            ServiceExitCode::ServiceSpecific(exit)
        },
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    }
}

fn run_service() -> Result<(), windows_service::Error> {
    let (stop_tx, stop_rx) = mpsc::channel();
    // The handler reports StopPending itself, so the SCM waits for the drain instead of
    // declaring the service hung; it needs the handle, which exists only after `register`.
    let handle_slot: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let handler_slot = Arc::clone(&handle_slot);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Preshutdown | ServiceControl::Shutdown => {
            if let Some(handle) = handler_slot.get() {
                let _ = handle.set_service_status(status(
                    WinState::StopPending,
                    ServiceControlAccept::empty(),
                    0,
                    STOP_TIMEOUT,
                ));
            }
            // The receiver may already be gone if the body returned on its own.
            let _ = stop_tx.send(());
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(crate::SERVICE_NAME, handler)?;
    let _ = handle_slot.set(handle);
    handle.set_service_status(status(
        WinState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN,
        0,
        Duration::ZERO,
    ))?;
    let exit = match BODY.get() {
        Some(body) => body(stop_rx),
        None => 1,
    };
    handle.set_service_status(status(
        WinState::Stopped,
        ServiceControlAccept::empty(),
        exit,
        Duration::ZERO,
    ))
}
