//! Model check of the journal's crash points: an update is interrupted (as by `kill -9` or a
//! power loss) at every point of the swap and of the rollback, with a new version that is
//! healthy or that never becomes healthy; then a service manager starts whatever binary is
//! installed, again and again. Every path must end with a working agent: the installed file
//! byte-identical to the old or the new binary at every start, and at the end the new one
//! only when it confirmed, the old one otherwise, with no leftover download.
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use semver::Version;
use sha2::{Digest as _, Sha256};

use crate::manifest::Target;
use crate::state::{Accepted, Step, UpdateState};
use crate::swap::{
    on_start_at, swap_with, Crash, Health, Layout, Point, Release, Stager, StartAction,
};

const OLD: &str = "0.1.0";
const NEW: &str = "0.2.0";

fn script(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\n[ \"$1\" = --version ] && echo v{version}+model\nexit 0\n").into_bytes()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[derive(Debug, Clone, Copy)]
enum SwapCrash {
    None,
    MidDownload,
    At(Point),
}

fn run_case(dir: &Path, swap_crash: SwapCrash, healthy: bool, rollback_crash: bool) {
    let binary = dir.join("agent");
    fs::write(&binary, script(OLD)).unwrap();
    let layout = Layout::new(&binary, dir);
    let prior = Accepted {
        serial: 1,
        version: v(OLD),
    };
    UpdateState {
        accepted: Some(prior.clone()),
        journal: None,
    }
    .save(&layout.state_file)
    .unwrap();
    let new_bytes = script(NEW);
    let target = Target {
        version: v(NEW),
        url: "x".into(),
        size: new_bytes.len() as u64,
        sha256: Sha256::digest(&new_bytes).into(),
    };
    let release = Release {
        from: v(OLD),
        to: v(NEW),
        serial: 2,
    };
    let case = format!("{swap_crash:?} healthy={healthy} rollback_crash={rollback_crash}");

    // The update.
    let mut stager = Stager::create(&layout, &target).unwrap();
    match swap_crash {
        SwapCrash::MidDownload => stager.write(&new_bytes[..10]).unwrap(),
        _ => {
            stager.write(&new_bytes).unwrap();
            stager.finish().unwrap();
            let mut hook = |p: Point| match swap_crash {
                SwapCrash::At(at) if at == p => Err(Crash),
                _ => Ok(()),
            };
            // Err(Crash): stopped right there, as by kill -9.
            if let Ok(r) = swap_with(&layout, &release, &mut hook) {
                r.unwrap();
            }
        }
    }
    let swapped_completely = matches!(swap_crash, SwapCrash::None | SwapCrash::At(Point::Renamed));

    // The service manager restarts the agent until it settles.
    let health = Health {
        grace: Duration::from_secs(60),
        max_starts: 3,
        max_unconfirmed: Duration::from_secs(3600),
    };
    let mut now = 1_000_000;
    let mut crashed_rollback = false;
    let mut confirmed = false;
    for start in 0..20 {
        let on_disk = fs::read(&binary).unwrap();
        let running = if on_disk == script(OLD) {
            v(OLD)
        } else if on_disk == new_bytes {
            v(NEW)
        } else {
            panic!(
                "{case}: start {start}: the installed binary is neither the old nor the new one"
            );
        };
        let mut hook = |p: Point| {
            if rollback_crash && !crashed_rollback && p == Point::RollbackRenamed {
                crashed_rollback = true;
                return Err(Crash);
            }
            Ok(())
        };
        let action = match on_start_at(&layout, &running, &health, now, &mut hook) {
            Ok(r) => r.unwrap_or_else(|e| panic!("{case}: {e}")),
            Err(Crash) => {
                now += 10;
                continue;
            }
        };
        now += 10;
        match action {
            StartAction::ConfirmAfterGrace { .. } if healthy => {
                assert!(crate::swap::confirm(&layout, &running).unwrap(), "{case}");
                confirmed = true;
                break;
            }
            // Unhealthy: it dies before its grace period ends, and is started again.
            StartAction::ConfirmAfterGrace { .. } | StartAction::RolledBack { .. } => {}
            StartAction::Run | StartAction::Settled { .. } => {
                assert_eq!(
                    running,
                    v(OLD),
                    "{case}: an unconfirmed new binary runs as settled"
                );
                break;
            }
        }
    }

    let state = UpdateState::load(&layout.state_file).unwrap();
    let on_disk = fs::read(&binary).unwrap();
    assert!(!layout.staged().exists(), "{case}: leftover download");
    if swapped_completely && healthy {
        assert!(confirmed, "{case}");
        assert_eq!(on_disk, new_bytes, "{case}");
        assert_eq!(
            state.journal.as_ref().map(|j| j.step),
            Some(Step::Confirmed),
            "{case}"
        );
        assert_eq!(
            fs::read(layout.previous()).unwrap(),
            script(OLD),
            "{case}: previous binary kept"
        );
    } else {
        assert!(!confirmed, "{case}");
        assert_eq!(on_disk, script(OLD), "{case}: the old binary must be back");
    }
    match (&swap_crash, &state.journal) {
        (SwapCrash::MidDownload, j) => assert!(j.is_none(), "{case}"),
        (_, Some(j)) => {
            let want = if confirmed {
                Step::Confirmed
            } else {
                Step::RolledBack
            };
            assert_eq!(j.step, want, "{case}");
        }
        (_, None) => panic!("{case}: no journal"),
    }
    // A release that really ran and failed is not tried again; one whose swap never
    // happened may be.
    let expected_accepted = if swapped_completely { 2 } else { 1 };
    if !matches!(swap_crash, SwapCrash::MidDownload) {
        assert_eq!(
            state.accepted.as_ref().map(|a| a.serial),
            Some(expected_accepted),
            "{case}: accepted {:?}",
            state.accepted
        );
    }
}

#[test]
fn every_crash_point_leaves_a_working_agent() {
    let swap_crashes = [
        SwapCrash::None,
        SwapCrash::MidDownload,
        SwapCrash::At(Point::Staged),
        SwapCrash::At(Point::PreviousKept),
        SwapCrash::At(Point::SwappedJournal),
        SwapCrash::At(Point::Renamed),
    ];
    let mut cases = 0;
    for swap_crash in swap_crashes {
        for healthy in [true, false] {
            for rollback_crash in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                run_case(dir.path(), swap_crash, healthy, rollback_crash);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 24);
}
