//! Readiness of a process's parts, for `/readyz`, and whether the process can still
//! recover at all, for `/healthz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The readiness of every registered component. Ready when all of them are.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, Status>>>,
    /// Set when a part failed in a way only a restart fixes.
    fatal: Arc<Mutex<Option<String>>>,
}

/// One component's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Whether it can do its work.
    pub ready: bool,
    /// Why, for people.
    pub detail: String,
}

/// A component's handle to report its readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    name: String,
    components: Arc<Mutex<BTreeMap<String, Status>>>,
}

impl Health {
    /// Adds a component, not ready until it says so.
    pub fn register(&self, name: impl Into<String>) -> Readiness {
        let name = name.into();
        self.lock().insert(
            name.clone(),
            Status {
                ready: false,
                detail: "starting".into(),
            },
        );
        Readiness {
            name,
            components: self.components.clone(),
        }
    }

    /// Whether every component is ready, and each one's status.
    pub fn snapshot(&self) -> (bool, BTreeMap<String, Status>) {
        let components = self.lock().clone();
        let ready = !components.is_empty() && components.values().all(|status| status.ready);
        (ready, components)
    }

    /// Records that the process cannot recover without a restart (an idempotent producer's
    /// fatal error): `/healthz` fails from now on, so an orchestrator restarts it. The first
    /// reason is kept.
    pub fn fail(&self, reason: &str) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        fatal.get_or_insert_with(|| reason.to_string());
    }

    /// Why the process needs a restart, if it does.
    pub fn failure(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Status>> {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Readiness {
    /// Reports this component's state.
    pub fn set(&self, ready: bool, detail: &str) {
        let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        components.insert(
            self.name.clone(),
            Status {
                ready,
                detail: detail.to_string(),
            },
        );
    }

    /// Whether this component last reported ready.
    pub fn is_ready(&self) -> bool {
        let components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        components
            .get(&self.name)
            .is_some_and(|status| status.ready)
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let health = Health::default();
        assert!(!health.snapshot().0, "nothing registered is not ready");
        let consumer = health.register("consumer");
        let producer = health.register("producer");
        consumer.set(true, "assigned");
        assert!(!health.snapshot().0);
        producer.set(true, "connected");
        assert!(health.snapshot().0);
        producer.set(false, "all brokers down");
        let (ready, components) = health.snapshot();
        assert!(!ready);
        assert_eq!(components["producer"].detail, "all brokers down");
    }
}
