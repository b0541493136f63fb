//! Whether the shared store is usable, and the one log line per transition.
//!
//! Requests that need the store look at [`Health::is_up`] and answer 503 at once while it is down;
//! whoever notices a change (a request whose connection failed, the monitor) calls [`Health::set_down`]
//! or [`Health::set_up`], and only the call that changes the state logs, so a database outage under
//! load is one error line, and its end one info line, whatever the request rate.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Up or down, with the last reason it went down.
#[derive(Debug)]
pub struct Health {
    target: String,
    state: AtomicU8,
    reason: Mutex<String>,
}

impl Health {
    /// Not known yet (before the first connection attempt): treated as down.
    pub fn new(target: String) -> Health {
        Health {
            target,
            state: AtomicU8::new(UNKNOWN),
            reason: Mutex::new("not connected yet".into()),
        }
    }

    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    /// Why the store is down (the last failure seen).
    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|_| "unknown".into())
    }

    /// Marks the store down; logs once when it was up (or not known yet).
    pub fn set_down(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason.to_string();
        }
        match self.state.swap(DOWN, Ordering::AcqRel) {
            UP => tracing::error!(
                "store: PostgreSQL {} is unavailable: {reason}; private_key_jwt authentications and deliveries answer 503 until it returns (client secrets and mutual TLS still get tokens); retrying",
                self.target
            ),
            UNKNOWN => tracing::error!(
                "store: PostgreSQL {} is unavailable at start-up: {reason}; the server starts anyway, answers 503 for private_key_jwt and deliveries, and keeps retrying",
                self.target
            ),
            _ => {}
        }
    }

    /// Marks the store up; logs once when it was down (or not known yet).
    pub fn set_up(&self) {
        match self.state.swap(UP, Ordering::AcqRel) {
            DOWN => tracing::info!("store: PostgreSQL {} is available again", self.target),
            UNKNOWN => tracing::info!("store: PostgreSQL {} is available", self.target),
            _ => {}
        }
    }
}
