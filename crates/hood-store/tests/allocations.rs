//! Allocation store conformance: placement inside the write, on SQLite and
//! PostgreSQL. A host of declared capacity fills exactly, the next request
//! finds no room, a released allocation's capacity is placed again, a
//! retried request finds its allocation, and concurrent requests for the
//! last slices never overcommit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::allocation::{Allocation, AllocationSpec, CapacitySource};
use hood_domain::audit::AuditContext;
use hood_domain::container::{Container, ContainerSpec, Desired};
use hood_domain::identity::Organization;
use hood_domain::lifecycle::AllocationState;
use hood_domain::placement::{check, GpuShape, HostCapacity, PlacementError, Shape};
use hood_domain::{AllocationId, ContainerId, HostId, OrgId, Timestamp};
use hood_store::allocation::Placed;
use hood_store::audit::AuditFilter;
use hood_store::{Store, StoreError};
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn ctx() -> AuditContext {
    AuditContext {
        actor: "user:test".into(),
        request_id: Some("req-test".into()),
        reason: None,
    }
}

async fn org(store: &dyn Store) -> OrgId {
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: format!("org-{}", uuid::Uuid::new_v4().simple()),
        name: "alloc".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    org.id
}

async fn host_with(store: &dyn Store, cores: u32) -> HostId {
    let host = support::host(None, T0);
    store.create_host(&host).await.unwrap();
    let capacity = HostCapacity {
        cores,
        memory_mib: u64::from(cores) * 4096,
        disk_mib: u64::from(cores) * 10_240,
        gpus: vec![],
    };
    assert!(store
        .set_host_capacity(
            host.id,
            CapacitySource::Declared,
            &capacity,
            T0,
            Some(&ctx())
        )
        .await
        .unwrap());
    host.id
}

fn cpu(cores: u32) -> Shape {
    Shape {
        cores,
        memory_mib: u64::from(cores) * 4096,
        disk_mib: 1024,
        gpu: GpuShape::None,
    }
}

fn draft(org: OrgId, key: Option<&str>) -> Allocation {
    Allocation {
        id: AllocationId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        // Chosen by the store.
        host_id: HostId::from_uuid(uuid::Uuid::nil()),
        sku: "cpu.2c8g".into(),
        price_per_minute_minor: 2,
        currency: hood_domain::billing::Currency::usd(),
        spec: AllocationSpec {
            command: vec!["sleep".into(), "infinity".into()],
            ..Default::default()
        },
        state: AllocationState::Requested,
        reservation: hood_domain::placement::Reservation {
            cores: vec![],
            memory_mib: 0,
            disk_mib: 0,
            gpus: vec![],
        },
        idempotency_key: key.map(str::to_owned),
        expires_at: None,
        error: None,
        active_since: None,
        active_until: None,
        idle_since: None,
        ports: Default::default(),
        created_at: T0,
        updated_at: T0,
    }
}

fn created(p: Placed) -> Allocation {
    match p {
        Placed::Created(a) => a,
        other => panic!("expected a new allocation, got {other:?}"),
    }
}

async fn a_host_fills_exactly_and_released_capacity_is_placed_again(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 8).await;
    let mut made = vec![];
    for _ in 0..4 {
        made.push(created(
            store
                .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
                .await
                .unwrap(),
        ));
    }
    let mut cores: Vec<u32> = made
        .iter()
        .flat_map(|a| a.reservation.cores.clone())
        .collect();
    cores.sort_unstable();
    assert_eq!(cores, (0..8).collect::<Vec<_>>());
    assert!(made
        .iter()
        .all(|a| a.host_id == host && a.state == AllocationState::Requested));

    // Full: the next one finds no room and says why.
    match store
        .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
        .await
        .unwrap()
    {
        Placed::NoRoom(PlacementError::Insufficient { resource, free, .. }) => {
            assert_eq!((resource, free), ("cores", 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.live_allocations(host).await.unwrap().len(), 4);

    // Release one through the machine: its cores are placed again.
    let freed = &made[1];
    let released = store
        .transition_allocation(
            freed.id,
            &[
                AllocationState::Requested,
                AllocationState::Releasing,
                AllocationState::Released,
            ],
            T0.plus_secs(60),
            "allocation.exit",
            Some("the command exited with status 3"),
            &ctx(),
        )
        .await
        .unwrap()
        .expect("released");
    assert_eq!(released.state, AllocationState::Released);
    // Why it ended is kept on the record.
    let stored = store.get_allocation(org, freed.id).await.unwrap().unwrap();
    assert_eq!(
        stored.error.as_deref(),
        Some("the command exited with status 3")
    );
    assert_eq!(stored, released);
    assert!(
        store
            .transition_allocation(
                freed.id,
                &[AllocationState::Releasing, AllocationState::Released],
                T0,
                "allocation.release",
                None,
                &ctx(),
            )
            .await
            .unwrap()
            .is_none(),
        "a stale transition changes nothing"
    );
    assert!(matches!(
        store
            .transition_allocation(
                freed.id,
                &[AllocationState::Active, AllocationState::Released],
                T0,
                "allocation.release",
                None,
                &ctx(),
            )
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    // One audit row per mutation: four creations and one release, each
    // with the request that caused it; the release keeps before and after.
    let rows = store
        .list_audit(&AuditFilter {
            org_id: Some(org),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "allocation.exit",
            "allocation.create",
            "allocation.create",
            "allocation.create",
            "allocation.create"
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.request_id.as_deref() == Some("req-test")));
    assert_eq!(rows[0].before.as_ref().unwrap()["state"], "requested");
    assert_eq!(rows[0].after.as_ref().unwrap()["state"], "released");
    assert_eq!(
        rows[0].after.as_ref().unwrap()["error"],
        "the command exited with status 3"
    );
    assert_eq!(rows[0].resource_id, freed.id.to_string());
    let page = store
        .list_audit(&AuditFilter {
            org_id: Some(org),
            before: Some(rows[1].id),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rows[2].id, rows[3].id]
    );
    let again = created(
        store
            .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    assert_eq!(again.reservation.cores, freed.reservation.cores);
    let stored = store.get_allocation(org, freed.id).await.unwrap().unwrap();
    assert_eq!(stored.state, AllocationState::Released);
    assert_eq!(store.list_allocations(org).await.unwrap().len(), 5);
    let live: Vec<_> = store
        .live_allocations(host)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.reservation)
        .collect();
    let inventory = store.host_inventory(host).await.unwrap().unwrap();
    assert_eq!(check(&inventory.capacity, &live), Ok(()));
}

async fn a_retried_request_finds_its_allocation(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 4).await;
    let first = created(
        store
            .create_allocation(&draft(org, Some("req-1")), &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    match store
        .create_allocation(&draft(org, Some("req-1")), &cpu(2), &[host], &ctx())
        .await
        .unwrap()
    {
        Placed::Existing(a) => assert_eq!(a, first),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.live_allocations(host).await.unwrap().len(), 1);
    // Another organization's key is its own.
    let other = org_again(store).await;
    created(
        store
            .create_allocation(&draft(other, Some("req-1")), &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
}

async fn org_again(store: &dyn Store) -> OrgId {
    org(store).await
}

async fn candidates_are_tried_in_order_and_reports_do_not_override_declarations(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let small = host_with(store, 2).await;
    let big = host_with(store, 16).await;
    let unknown = support::host(None, T0);
    store.create_host(&unknown).await.unwrap();
    let a = created(
        store
            .create_allocation(
                &draft(org, None),
                &cpu(4),
                &[unknown.id, small, big],
                &ctx(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        a.host_id, big,
        "the host without capacity and the small one are skipped"
    );

    let reported = HostCapacity {
        cores: 1,
        memory_mib: 1,
        disk_mib: 1,
        gpus: vec![],
    };
    assert!(!store
        .set_host_capacity(
            big,
            CapacitySource::Reported,
            &reported,
            T0.plus_secs(1),
            None
        )
        .await
        .unwrap());
    let inventory = store.host_inventory(big).await.unwrap().unwrap();
    assert_eq!(
        (inventory.source, inventory.capacity.cores),
        (CapacitySource::Declared, 16)
    );
    assert!(store
        .set_host_capacity(unknown.id, CapacitySource::Reported, &reported, T0, None)
        .await
        .unwrap());
}

/// Many requests race for a host with room for a few: exactly that many
/// are placed, and the placements never overlap.
async fn concurrent_requests_never_overcommit(db: &Harness) {
    db.migrated().await;
    let store = db.reopen().await;
    let org = org(store.as_ref()).await;
    let host = host_with(store.as_ref(), 6).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut placed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Placed::Created(_)) {
            placed += 1;
        }
    }
    assert_eq!(placed, 3);
    let live: Vec<_> = store
        .live_allocations(host)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.reservation)
        .collect();
    let inventory = store.host_inventory(host).await.unwrap().unwrap();
    assert_eq!(check(&inventory.capacity, &live), Ok(()));
}

async fn the_audit_log_is_append_only(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 4).await;
    created(
        store
            .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    let rows = || db.scalar("SELECT COUNT(*) FROM audit_log");
    // The declaration and the creation.
    assert_eq!(rows().await, Some(2));
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let refused = db.try_exec(sql).await.expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    assert_eq!(rows().await, Some(2));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM audit_log WHERE actor = 'user:test'")
            .await,
        Some(2)
    );
}

async fn maximum_durations_run_out_in_order(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 8).await;
    let mut soon = draft(org, None);
    soon.expires_at = Some(T0.plus_secs(60));
    let mut later = draft(org, None);
    later.expires_at = Some(T0.plus_secs(120));
    let soon = created(
        store
            .create_allocation(&soon, &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    let later = created(
        store
            .create_allocation(&later, &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    created(
        store
            .create_allocation(&draft(org, None), &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    let expired = |at| store.expired_allocations(at, 10);
    assert!(expired(T0.plus_secs(59)).await.unwrap().is_empty());
    let ids = |v: Vec<Allocation>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(expired(T0.plus_secs(60)).await.unwrap()), vec![soon.id]);
    assert_eq!(
        ids(expired(T0.plus_secs(600)).await.unwrap()),
        vec![soon.id, later.id]
    );
    // On its way out: no longer expiring.
    store
        .transition_allocation(
            soon.id,
            AllocationState::Requested.release_path().unwrap(),
            T0.plus_secs(61),
            "allocation.expire",
            None,
            &AuditContext::system("orchestrator"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(expired(T0.plus_secs(600)).await.unwrap()),
        vec![later.id]
    );
}

/// Entering `active` starts billing's clock and leaving it stops it; a
/// window finds exactly the allocations active at some time in it.
async fn active_spans_are_recorded_and_found_by_window(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 8).await;
    let audit = AuditContext::system("orchestrator");
    let step = |id, path: &'static [AllocationState], at: Timestamp| {
        let audit = audit.clone();
        async move {
            store
                .transition_allocation(id, path, at, "allocation.step", None, &audit)
                .await
                .unwrap()
                .unwrap()
        }
    };
    use AllocationState::*;
    let mut made = vec![];
    for _ in 0..3 {
        made.push(created(
            store
                .create_allocation(&draft(org, None), &cpu(1), &[host], &ctx())
                .await
                .unwrap(),
        ));
    }
    // a: active 10 s – 70 s; b: active from 30 s on; c: never active.
    let (a, b, c) = (made[0].id, made[1].id, made[2].id);
    for id in [a, b] {
        step(id, &[Requested, Provisioning], T0).await;
    }
    let on = step(a, &[Provisioning, Active], T0.plus_secs(10)).await;
    assert_eq!(on.active_since, Some(T0.plus_secs(10)));
    assert_eq!(on.active_until, None);
    step(b, &[Provisioning, Active], T0.plus_secs(30)).await;
    let off = step(a, &[Active, Releasing], T0.plus_secs(70)).await;
    assert_eq!(off.active_since, Some(T0.plus_secs(10)), "kept");
    assert_eq!(off.active_until, Some(T0.plus_secs(70)));
    // Releasing → released keeps the span as it was.
    let gone = step(a, &[Releasing, Released], T0.plus_secs(80)).await;
    assert_eq!(gone.active_until, Some(T0.plus_secs(70)));
    step(c, &[Requested, Releasing, Released], T0.plus_secs(5)).await;

    let window = |from: i64, to: i64| async move {
        let mut ids: Vec<_> = store
            .allocations_active_between(org, T0.plus_secs(from), T0.plus_secs(to))
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<AllocationId>| {
        v.sort();
        v
    };
    assert_eq!(window(0, 10).await, vec![]);
    assert_eq!(window(0, 11).await, vec![a]);
    assert_eq!(window(0, 60).await, sorted(vec![a, b]));
    assert_eq!(window(70, 130).await, vec![b], "a ended at 70 s");
    assert_eq!(window(1000, 2000).await, vec![b], "b still runs");
    // Another organization's window is empty; live ones are b only.
    let other = org_again(store).await;
    assert!(store
        .allocations_active_between(other, T0, T0.plus_secs(1000))
        .await
        .unwrap()
        .is_empty());
    let live: Vec<_> = store
        .org_live_allocations(org)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(live, vec![b]);
}

async fn an_active_allocations_idle_time_is_kept_on_its_row(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let host = host_with(store, 4).await;
    let id = created(
        store
            .create_allocation(&draft(org, None), &cpu(1), &[host], &ctx())
            .await
            .unwrap(),
    )
    .id;
    let audit = AuditContext::system("orchestrator");
    use AllocationState::*;
    // Only an active allocation idles.
    assert!(!store.set_allocation_idle_since(id, Some(T0)).await.unwrap());
    store
        .transition_allocation(
            id,
            &[Requested, Provisioning, Active],
            T0,
            "allocation.step",
            None,
            &audit,
        )
        .await
        .unwrap()
        .unwrap();
    let read = || async {
        store
            .get_allocation(org, id)
            .await
            .unwrap()
            .unwrap()
            .idle_since
    };
    assert_eq!(read().await, None);
    assert!(store
        .set_allocation_idle_since(id, Some(T0.plus_secs(60)))
        .await
        .unwrap());
    assert_eq!(read().await, Some(T0.plus_secs(60)));
    // What the worker reads each round carries it too.
    let active = store.allocations_in_states(&[Active], 10).await.unwrap();
    assert_eq!(active[0].idle_since, Some(T0.plus_secs(60)));
    assert!(store.set_allocation_idle_since(id, None).await.unwrap());
    assert_eq!(read().await, None);
    // Not an audited mutation: the only rows are the creation and the step.
    let rows = store
        .list_audit(&AuditFilter {
            resource_id: Some(id.to_string()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().all(|a| !a.contains("idle")), "{actions:?}");
}

fn container(org: OrgId, name: &str, at: i64) -> Container {
    Container {
        id: ContainerId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: name.into(),
        sku: "cpu.2c8g".into(),
        spec: ContainerSpec {
            image: "hood/app:1".into(),
            ports: vec![8000],
            ..Default::default()
        },
        desired: Desired::Running,
        generation: 1,
        allocation_id: None,
        error: None,
        created_at: Timestamp(T0.0 + at),
        updated_at: Timestamp(T0.0 + at),
    }
}

/// Containers: a name once per organization, found by id and by name,
/// pending until placed, every start and stop a generation (a stale one
/// changes nothing), each start's allocation linked once, and the
/// container's own events from its allocation's transitions.
async fn containers_keep_their_wish_and_link_each_starts_allocation(db: &Harness) {
    let store = db.migrated().await;
    let (org, other) = (org(store).await, org(store).await);
    let host = host_with(store, 8).await;
    let web = container(org, "web", 0);
    store.insert_container(&web, &ctx()).await.unwrap();
    // The name is the organization's; another may use it.
    let clash = store
        .insert_container(&container(org, "web", 1), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(clash, StoreError::Conflict(ref f) if f == "container name"),
        "{clash:?}"
    );
    store
        .insert_container(&container(other, "web", 1), &ctx())
        .await
        .unwrap();
    let db_ = store.container_by_name(org, "web").await.unwrap().unwrap();
    assert_eq!(db_, web);
    assert_eq!(
        store.get_container(org, web.id).await.unwrap(),
        Some(web.clone())
    );
    assert_eq!(store.get_container(other, web.id).await.unwrap(), None);
    let second = container(org, "api", 5);
    store.insert_container(&second, &ctx()).await.unwrap();
    let listed: Vec<String> = store
        .list_containers(org)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, vec!["api", "web"], "newest first");

    // Unplaced and wanted: pending (every organization's).
    let pending: Vec<ContainerId> = store
        .pending_containers(100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(pending.contains(&web.id) && pending.contains(&second.id));
    // A reason without an allocation keeps it pending.
    assert!(store
        .place_container(web.id, 1, None, Some("no room"), Timestamp(T0.0 + 6))
        .await
        .unwrap());
    let waiting = store.get_container(org, web.id).await.unwrap().unwrap();
    assert_eq!(waiting.error.as_deref(), Some("no room"));

    // Its allocation, carrying the container, placed and linked once.
    let mut draft_alloc = draft(org, Some(&web.allocation_key()));
    draft_alloc.spec = web.allocation_spec();
    let allocation = created(
        store
            .create_allocation(&draft_alloc, &cpu(2), &[host], &ctx())
            .await
            .unwrap(),
    );
    assert!(store
        .place_container(web.id, 1, Some(allocation.id), None, Timestamp(T0.0 + 7))
        .await
        .unwrap());
    assert!(
        !store
            .place_container(web.id, 1, Some(allocation.id), None, Timestamp(T0.0 + 7))
            .await
            .unwrap(),
        "linked once"
    );
    let placed = store.get_container(org, web.id).await.unwrap().unwrap();
    assert_eq!(placed.allocation_id, Some(allocation.id));
    assert_eq!(placed.error, None);
    assert!(!store
        .pending_containers(100)
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == web.id));

    // Its allocation's start and end are the container's events.
    use AllocationState as A;
    for path in [
        &[A::Requested, A::Provisioning][..],
        &[A::Provisioning, A::Active],
        &[A::Active, A::Releasing],
        &[A::Releasing, A::Released],
    ] {
        store
            .transition_allocation(
                allocation.id,
                path,
                Timestamp(T0.0 + 8),
                "allocation.test",
                None,
                &ctx(),
            )
            .await
            .unwrap()
            .unwrap();
    }
    let subjects: Vec<String> = store
        .outbox_pending(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.aggregate_type == "container")
        .map(|e| {
            assert_eq!(e.payload["org_id"], org.to_string());
            assert_eq!(e.payload["allocation_id"], allocation.id.to_string());
            e.subject
        })
        .collect();
    assert_eq!(
        subjects,
        vec![
            format!("compute.container.{}.started", web.id),
            format!("compute.container.{}.stopped", web.id),
        ]
    );

    // A stop is a generation that keeps the allocation being released; a
    // stale generation changes nothing.
    let stopped = store
        .set_container_desired(
            org,
            web.id,
            1,
            Desired::Stopped,
            Timestamp(T0.0 + 9),
            "container.stop",
            &ctx(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stopped.generation, stopped.desired), (2, Desired::Stopped));
    assert_eq!(stopped.allocation_id, Some(allocation.id));
    assert!(store
        .set_container_desired(
            org,
            web.id,
            1,
            Desired::Running,
            Timestamp(T0.0 + 9),
            "container.start",
            &ctx()
        )
        .await
        .unwrap()
        .is_none());
    // A start is a generation without an allocation: pending again.
    let started = store
        .set_container_desired(
            org,
            web.id,
            2,
            Desired::Running,
            Timestamp(T0.0 + 10),
            "container.start",
            &ctx(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((started.generation, started.allocation_id), (3, None));
    assert_ne!(started.allocation_key(), web.allocation_key());
    assert!(store
        .pending_containers(100)
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == web.id));
    // A stale generation cannot be linked.
    assert!(!store
        .place_container(web.id, 2, Some(allocation.id), None, Timestamp(T0.0 + 11))
        .await
        .unwrap());

    assert!(store
        .delete_container(org, web.id, Timestamp(T0.0 + 12), &ctx())
        .await
        .unwrap());
    assert!(!store
        .delete_container(org, web.id, Timestamp(T0.0 + 12), &ctx())
        .await
        .unwrap());
    assert!(store.container_by_name(org, "web").await.unwrap().is_none());
    // Every change has its audit row.
    let rows = store
        .list_audit(&AuditFilter {
            org_id: Some(org),
            resource_type: Some("container".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        vec![
            "container.create",
            "container.create",
            "container.delete",
            "container.start",
            "container.stop"
        ]
    );
}

conformance!(
    containers_keep_their_wish_and_link_each_starts_allocation,
    an_active_allocations_idle_time_is_kept_on_its_row,
    active_spans_are_recorded_and_found_by_window,
    maximum_durations_run_out_in_order,
    the_audit_log_is_append_only,
    a_host_fills_exactly_and_released_capacity_is_placed_again,
    a_retried_request_finds_its_allocation,
    candidates_are_tried_in_order_and_reports_do_not_override_declarations,
    concurrent_requests_never_overcommit,
);
