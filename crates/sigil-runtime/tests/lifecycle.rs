//! The lifecycle state machine: every transition, and racing transitions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sigil_runtime::{IllegalTransition, Lifecycle, State};

#[test]
fn exactly_the_documented_transitions_are_legal() {
    use State::*;
    let legal = [
        (Discovered, Validating),
        (Validating, Loading),
        (Loading, Running),
        (Running, Draining),
        (Draining, Stopping),
        (Stopping, Stopped),
        (Validating, Error),
        (Loading, Error),
        (Running, Error),
        (Draining, Error),
        (Stopping, Error),
        (Stopped, Loading),
        (Error, Loading),
    ];
    for from in State::ALL {
        for to in State::ALL {
            let expected = legal.contains(&(from, to));
            assert_eq!(from.can_become(to), expected, "{from} -> {to}");
        }
    }
}

#[test]
fn a_plugin_walks_its_whole_life_and_illegal_steps_are_rejected() {
    let life = Lifecycle::new();
    assert_eq!(life.state(), State::Discovered);
    assert_eq!(
        life.transition(State::Running),
        Err(IllegalTransition {
            from: State::Discovered,
            to: State::Running
        })
    );
    for to in [
        State::Validating,
        State::Loading,
        State::Running,
        State::Draining,
        State::Stopping,
        State::Stopped,
    ] {
        life.transition(to).unwrap();
        assert_eq!(life.state(), to);
    }
    // A stopped plugin can be loaded again, not drained.
    assert!(life.transition(State::Draining).is_err());
    assert_eq!(life.transition(State::Loading), Ok(State::Stopped));
}

#[test]
fn failing_records_the_reason_and_a_restart_clears_it() {
    let life = Lifecycle::new();
    assert!(life.fail("too early").is_err(), "discovered cannot fail");
    life.transition(State::Validating).unwrap();
    life.fail("manifest broken").unwrap();
    assert_eq!(
        (life.state(), life.error()),
        (State::Error, Some("manifest broken".to_string()))
    );
    assert!(life.fail("again").is_err(), "error cannot fail again");
    life.transition(State::Loading).unwrap();
    assert_eq!(life.error(), None);
}

#[test]
fn of_racing_transitions_out_of_one_state_exactly_one_wins() {
    for _ in 0..50 {
        let life = Arc::new(Lifecycle::new());
        for to in [State::Validating, State::Loading, State::Running] {
            life.transition(to).unwrap();
        }
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let life = life.clone();
                std::thread::spawn(move || {
                    let to = if i % 2 == 0 {
                        State::Draining
                    } else {
                        State::Error
                    };
                    life.transition_from(State::Running, to).is_ok()
                })
            })
            .collect();
        let wins = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1);
        assert!(matches!(life.state(), State::Draining | State::Error));
    }
}
