use super::*;
use proptest::prelude::*;

const DIM: usize = 4;

fn unit(v: [f32; DIM]) -> Vec<f32> {
    let mut v = v.to_vec();
    crate::normalize(&mut v);
    v
}

fn fill(op: &str, role: &str, city: &str, date: &str, workers: &[(&str, &str)]) -> NewPlaybook {
    NewPlaybook {
        operation: op.into(),
        role: role.into(),
        city: city.into(),
        state: "OH".into(),
        date: date.into(),
        staffer: "sarah".into(),
        workers: workers.iter().map(|(id, name)| Endorsed { worker_id: (*id).into(), name: (*name).into() }).collect(),
        valid_from: None,
        valid_until: None,
        schema_fingerprint: None,
        attributes: BTreeMap::new(),
    }
}

fn query(city: &str, role: &str, today: &str) -> BoostQuery {
    BoostQuery { city: Some(city.into()), state: Some("OH".into()), role: Some(role.into()), k: 200, today: today.into(), ..Default::default() }
}

#[test]
fn boost_matches_the_hand_computed_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    // An exact role+geo match (similarity 1.0), 15 days old, two workers.
    memory.seed(fill("Welder x2 in Toledo, OH", "Welder", "Toledo", "2026-11-06", &[("1", "Ana"), ("2", "Bo")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    let result = memory.boost(&unit([0.0, 1.0, 0.0, 0.0]), &query("Toledo", "Welder", "2026-11-21"), None).unwrap();
    let expected = 1.0 * 0.5 * (-15.0f64 / 30.0).exp() as f32 / 2.0;
    assert_eq!(result.workers.len(), 2);
    assert!((result.workers[0].boost - expected).abs() < 1e-6, "{} vs {expected}", result.workers[0].boost);
    assert!(result.line.starts_with("playbook_boost: boosts=2 sources=1 parsed=1 matched=2 target_geo=Toledo, OH target_role=Welder"));
}

#[test]
fn a_no_show_halves_the_next_boost_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        // 30 days old: 0.5 * e^-1 = 0.18, under the cap, so the halving is visible.
        memory.seed(fill("Welder x1 in Toledo", "Welder", "Toledo", "2026-10-22", &[("1", "Ana")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        before = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &query("Toledo", "Welder", "2026-11-21"), None).unwrap().workers[0].boost;
        assert_eq!(memory.mark_failed("Toledo", "OH", "1", "Ana").unwrap(), 1);
    }
    let memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    let after = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &query("toledo", "welder", "2026-11-21"), None).unwrap();
    assert!((after.workers[0].boost - before / 2.0).abs() < 1e-6);
    assert_eq!(after.workers[0].failures, 1);
}

#[test]
fn the_same_operation_and_date_updates_or_noops_instead_of_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    let v = unit([1.0, 1.0, 0.0, 0.0]);
    let base = fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-20", &[("1", "Ana")]);
    assert_eq!(memory.seed(base.clone(), &v).unwrap().0, SeedOp::Add);
    assert_eq!(memory.seed(base.clone(), &v).unwrap().0, SeedOp::Noop);
    let more = fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-20", &[("2", "Bo")]);
    let (op, entry) = memory.seed(more, &v).unwrap();
    assert_eq!(op, SeedOp::Update);
    assert_eq!(entry.fields.workers.len(), 2, "endorsements are merged");
    assert_eq!(memory.len(), 1);
    assert_eq!(memory.delete(&entry.id).unwrap(), SeedOp::Delete);
    assert_eq!(PlaybookMemory::open(dir.path(), DIM).unwrap().len(), 0);
}

#[test]
fn expired_and_schema_changed_playbooks_never_boost_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    let mut expired = fill("Welder a", "Welder", "Toledo", "2026-11-01", &[("1", "Ana")]);
    expired.valid_until = Some("2026-11-10".into());
    let mut old_schema = fill("Welder b", "Welder", "Toledo", "2026-11-02", &[("2", "Bo")]);
    old_schema.schema_fingerprint = Some("fp-old".into());
    memory.seed(expired, &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    memory.seed(old_schema, &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    let mut q = query("Toledo", "Welder", "2026-11-21");
    q.schema_fingerprint = Some("fp-new".into());
    let result = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, None).unwrap();
    assert!(result.workers.is_empty());
    assert_eq!((result.diagnostics.skipped_expired, result.diagnostics.skipped_schema_changed), (1, 1));
}

#[test]
fn exact_role_matches_fill_half_of_k_and_cosine_fills_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    for d in 1..=6 {
        memory.seed(fill(&format!("Welder {d}"), "Welder", "Toledo", &format!("2026-11-0{d}"), &[(&format!("w{d}"), "W")]), &unit([0.0, 0.0, 1.0, 0.0])).unwrap();
        memory.seed(fill(&format!("Cook {d}"), "Cook", "Toledo", &format!("2026-11-0{d}"), &[(&format!("c{d}"), "C")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    }
    memory.seed(fill("Welder elsewhere", "Welder", "Akron", "2026-11-05", &[("a1", "A")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    let mut q = query("Toledo", "Welder", "2026-11-10");
    q.k = 4;
    let result = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, None).unwrap();
    assert_eq!(result.diagnostics.exact_matches, 2, "exact matches fill half of k");
    assert_eq!(result.diagnostics.sources, 4);
    let exact: Vec<_> = result.workers.iter().filter(|w| w.citations[0].exact_match).collect();
    assert_eq!(exact.len(), 2);
    assert!(result.workers.iter().all(|w| w.key.city == "toledo"), "the geo prefilter keeps Akron out");
    assert!(result.workers.iter().filter(|w| !w.citations[0].exact_match).all(|w| w.key.worker_id.starts_with('c')));
}

#[test]
fn compaction_drops_old_and_merges_near_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    memory.seed(fill("Welder old", "Welder", "Toledo", "2025-01-01", &[("1", "A")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    memory.seed(fill("Welder x2 Toledo", "Welder", "Toledo", "2026-11-01", &[("2", "B")]), &unit([0.0, 1.0, 0.0, 0.0])).unwrap();
    memory.seed(fill("Welders x2 Toledo", "Welder", "Toledo", "2026-11-02", &[("3", "C")]), &unit([0.0, 1.0, 0.01, 0.0])).unwrap();
    let policy = CompactionPolicy { ttl_days: 365.0, decay_floor: 1e-4, merge_cosine: 0.98 };
    let report = memory.compact(&policy, "2026-11-21").unwrap();
    assert_eq!((report.before, report.after, report.expired_ttl.len(), report.merged.len()), (3, 1, 1, 1));
    let reopened = PlaybookMemory::open(dir.path(), DIM).unwrap();
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened.entries()[0].fields.workers.len(), 2);
}

#[test]
fn with_candidates_only_playbooks_endorsing_one_take_the_k_places() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    // Two very similar playbooks endorse non-candidates; a less similar one endorses a candidate.
    memory.seed(fill("Welder a", "Welder", "Toledo", "2026-11-01", &[("x1", "X")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    memory.seed(fill("Welder b", "Welder", "Toledo", "2026-11-02", &[("x2", "Y")]), &unit([1.0, 0.1, 0.0, 0.0])).unwrap();
    memory.seed(fill("Welder c", "Welder", "Toledo", "2026-11-03", &[("c1", "C"), ("x3", "Z")]), &unit([0.2, 1.0, 0.0, 0.0])).unwrap();
    let mut q = BoostQuery { state: Some("OH".into()), role: Some("Welder".into()), k: 1, today: "2026-11-10".into(), ..Default::default() };
    let global = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, None).unwrap();
    assert_eq!(global.workers.iter().map(|w| w.key.worker_id.as_str()).collect::<Vec<_>>(), ["x1"], "without candidates the top playbook wins");
    let candidates = ["c1", "nobody"];
    let scoped = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, Some(&candidates)).unwrap();
    assert_eq!(scoped.diagnostics.outside_candidates, 2);
    assert_eq!(scoped.diagnostics.matched, 1);
    let ids: Vec<_> = scoped.workers.iter().map(|w| w.key.worker_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "the co-endorsed non-candidate is still boosted: {ids:?}");
    assert!(ids.contains(&"c1"));
    q.candidates_only = true;
    let only = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, Some(&candidates)).unwrap();
    assert_eq!(only.workers.iter().map(|w| w.key.worker_id.as_str()).collect::<Vec<_>>(), ["c1"]);
    assert_eq!(only.diagnostics.boosts, 2, "the diagnostics still count every boosted worker");
}

#[test]
fn citations_can_be_cut_while_their_count_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    for d in 1..=4 {
        memory.seed(fill(&format!("Cook {d}"), "Cook", "Toledo", &format!("2026-11-0{d}"), &[("1", "Ana")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
    }
    let mut q = query("Toledo", "Cook", "2026-11-10");
    q.max_citations = Some(2);
    let result = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q, None).unwrap();
    assert_eq!((result.workers[0].citations.len(), result.workers[0].citations_total), (2, 4));
    assert!(result.workers[0].citations[0].contribution >= result.workers[0].citations[1].contribution, "the strongest are kept");
}

#[test]
fn an_update_that_adds_a_worker_makes_the_playbook_findable_through_that_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
    let v = unit([1.0, 0.0, 0.0, 0.0]);
    memory.seed(fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-05", &[("1", "Ana")]), &v).unwrap();
    memory.seed(fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-05", &[("2", "Bo")]), &v).unwrap();
    let mut q = query("Toledo", "Welder", "2026-11-10");
    q.candidates_only = true;
    let found = memory.boost(&v, &q, Some(&["2"])).unwrap();
    assert_eq!(found.workers.iter().map(|w| w.key.worker_id.as_str()).collect::<Vec<_>>(), ["2"]);
}

proptest! {
    #[test]
    fn boost_equals_the_formula_and_never_exceeds_the_cap(
        ages in prop::collection::vec(0u32..400, 1..12),
        failures in 0u32..5,
        n_workers in 1usize..6,
        similarity_x in 0.0f32..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let pv = unit([1.0, 0.0, 0.0, 0.0]);
        let qv = unit([similarity_x, (1.0 - similarity_x * similarity_x).max(0.0).sqrt(), 0.0, 0.0]);
        let similarity = crate::dot(&qv, &pv);
        let mut expected = 0.0f64;
        for (n, age) in ages.iter().enumerate() {
            let date = (today - chrono::Duration::days(*age as i64)).format("%Y-%m-%d").to_string();
            let workers: Vec<(String, String)> = (0..n_workers).map(|j| (if j == 0 { "target".to_string() } else { format!("o{n}-{j}") }, "T".to_string())).collect();
            let refs: Vec<(&str, &str)> = workers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            memory.seed(fill(&format!("op {n}"), "Cook", "Toledo", &date, &refs), &pv).unwrap();
            expected += similarity as f64 * 0.5 * (-(*age as f64) / 30.0).exp() * 0.5f64.powi(failures as i32) / n_workers as f64;
        }
        for _ in 0..failures {
            memory.mark_failed("Toledo", "OH", "target", "T").unwrap();
        }
        let result = memory.boost(&qv, &query("Toledo", "Welder", "2026-11-21"), None).unwrap();
        let target = result.workers.iter().find(|w| w.key.worker_id == "target");
        let got = target.map(|w| w.boost).unwrap_or(0.0);
        prop_assert!(got <= BOOST_CAP);
        prop_assert!((got as f64 - expected.min(BOOST_CAP as f64)).abs() < 1e-4, "got {got}, expected {expected}");
    }

    #[test]
    fn answers_survive_restart_and_all_candidates_change_nothing(
        seeds in prop::collection::vec((0usize..3, 0usize..2, 0usize..3, 1u32..28, 0usize..5, prop::array::uniform4(-1.0f32..1.0)), 1..40),
        deletes in prop::collection::vec(0usize..40, 0..4),
        state_only in any::<bool>(),
        k in 1usize..12,
    ) {
        const ROLES: [&str; 3] = ["Welder", "Cook", "Driver"];
        const CITIES: [&str; 2] = ["Toledo", "Akron"];
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        for (n, (role, city, op, day, worker, v)) in seeds.iter().enumerate() {
            let mut vector = v.to_vec();
            vector[3] += 0.01 + n as f32 * 1e-3;
            crate::normalize(&mut vector);
            let date = format!("2026-11-{day:02}");
            // `op` repeats (operation, date) pairs now and then: UPDATEs and NOOPs happen.
            let name = format!("{} op{op}", ROLES[*role]);
            memory.seed(fill(&name, ROLES[*role], CITIES[*city], &date, &[(&format!("w{worker}"), "W")]), &vector).unwrap();
        }
        for d in deletes {
            if let Some(id) = memory.entries().get(d).map(|p| p.id.clone()) {
                memory.delete(&id).unwrap();
            }
        }
        let mut q = query("Toledo", "Welder", "2026-11-28");
        q.k = k;
        if state_only {
            q.city = None;
        }
        let probe = unit([0.5, 0.2, -0.1, 0.3]);
        let before = memory.boost(&probe, &q, None).unwrap();
        let reopened = PlaybookMemory::open(dir.path(), DIM).unwrap();
        let after = reopened.boost(&probe, &q, None).unwrap();
        let summary = |r: &BoostResult| r.workers.iter().map(|w| (w.key.clone(), w.boost, w.citations_total)).collect::<Vec<_>>();
        prop_assert_eq!(summary(&before), summary(&after));
        prop_assert_eq!(&before.line, &after.line);
        let everyone: Vec<String> = (0..5).map(|w| format!("w{w}")).collect();
        let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
        let all = memory.boost(&probe, &q, Some(&everyone)).unwrap();
        prop_assert_eq!(summary(&before), summary(&all));
        prop_assert_eq!(all.diagnostics.outside_candidates, 0);
    }
}
