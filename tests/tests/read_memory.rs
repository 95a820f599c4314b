//! Reading every stored alert (`alerts list`, `alerts export`, `verify`) through the running
//! agent and with the CLI reading the store itself stays within the documented memory
//! budget (`nightjar_tests::read_memory::BUDGET_KIB`, 32 MiB above idle), and the agent
//! gives the memory back. `scripts/bench store` measures the same for 100,000 alerts.

use nightjar_tests::read_memory::{BUDGET_KIB, measure};

/// Enough alerts that keeping what was read (what the sled-only store did: ~3.3 KB per
/// alert, 40 MB here) would pass the budget; few enough for a debug build in CI.
const ALERTS: u32 = 12_000;

#[test]
fn reading_every_alert_stays_within_the_memory_budget() {
    let m = measure(ALERTS);
    eprintln!("{m:#?}");
    for (read, growth) in &m.agent_growth_kib {
        assert!(
            *growth <= BUDGET_KIB,
            "{read} through the agent raised its heap by {growth} KiB (budget {BUDGET_KIB} KiB): {m:#?}"
        );
    }
    assert!(
        m.agent_after_kib <= BUDGET_KIB,
        "the agent kept {} KiB after the reads: {m:#?}",
        m.agent_after_kib
    );
    for (read, growth) in &m.offline_growth_kib {
        assert!(
            *growth <= BUDGET_KIB,
            "{read} at rest took {growth} KiB above the CLI's own (budget {BUDGET_KIB} KiB): {m:#?}"
        );
    }
}
