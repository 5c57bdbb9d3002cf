//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! Every replica serves OAuth; only the lease holder writes Secrets, status and keys. The
//! holder renews every `duration / 3`; a replica takes the lease over only once it has not
//! been renewed for `duration`. A holder that could not renew for `2/3 duration` stops acting
//! as leader before anyone else may start, so two replicas never write at once. Every write
//! to the Lease carries its resourceVersion: of two replicas racing for it, one wins.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the Pod name).
    pub identity: String,
    pub duration: Duration,
}

/// Runs the election until `stop`, publishing whether this replica leads. On a clean stop
/// the lease is released so that another replica takes over at once.
pub async fn run(
    client: kube::Client,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    stop: impl Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let renew_deadline = config.duration * 2 / 3;
    let mut last_renewal: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        match try_acquire_or_renew(&api, &config).await {
            Ok(true) => {
                if !*leader.borrow() {
                    tracing::info!(identity = %config.identity, lease = %config.name, "became leader");
                }
                last_renewal = Some(Instant::now());
                leader.send_replace(true);
            }
            Ok(false) => {
                if *leader.borrow() {
                    tracing::warn!(identity = %config.identity, "lost leadership: the lease is held by another replica");
                }
                last_renewal = None;
                leader.send_replace(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "cannot reach the lease");
                if last_renewal.is_none_or(|at| at.elapsed() >= renew_deadline) && *leader.borrow() {
                    tracing::warn!(identity = %config.identity, "stepping down: lease not renewed in time");
                    leader.send_replace(false);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.duration / 3) => {}
            () = &mut stop => break,
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        if let Err(e) = release(&api, &config).await {
            tracing::warn!(error = %e, "cannot release the lease");
        }
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One round: true when this replica holds the lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let seconds = config.duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let mine = holder == config.identity;
    if !mine && !holder.is_empty() {
        let renewed = spec.renew_time.as_ref().map(|t| t.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let held_for = spec.lease_duration_seconds.unwrap_or(seconds).max(1) as i64;
        let expired = jiff::Timestamp::now().as_second() >= renewed.as_second() + held_for;
        if !expired {
            return Ok(false);
        }
    }
    if !mine {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(seconds);
    // `replace` sends the resourceVersion we read: a concurrent writer makes this fail (409).
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else { return Ok(()) };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    api.replace(&config.name, &PostParams::default(), &lease).await.map(|_| ())
}
