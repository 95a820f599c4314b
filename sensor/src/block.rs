//! Blocking rules (prevention) as the sensor holds them: the rules named in `[rules] block`
//! that can block on this platform (the rule engine refuses the others, with the reason, and
//! they still detect), and on Linux their compiled form for the eBPF exec probe.

use std::sync::Arc;

use nightjar_rules::RuleSet;
use nightjar_rules::matcher::block::{
    KERNEL_ARGS_MAX, KERNEL_PATH_MAX, KERNEL_VALUE_MAX, KernelConj,
};

/// `BLOCK_MAX` in `src/bpf/events.h`: blockers (conjunctions) the kernel holds.
pub const BLOCK_MAX: usize = 32;
const BLOCK_VAL: usize = 64;
const BLOCK_EXE: usize = 256;
const BK_NAME: u32 = 0;
const BK_PARENT: u32 = 2;
const BK_ARG: u32 = 4;
const BK_EXE: u32 = 6;
/// `sizeof(struct block_conf)`.
pub const CONF_LEN: usize = 6 * 4 + 2 * 8 + 2 * BLOCK_MAX;

const _: () = assert!(KERNEL_VALUE_MAX < BLOCK_VAL && KERNEL_PATH_MAX < BLOCK_EXE);
const _: () = assert!(KERNEL_ARGS_MAX == 4);

/// The loaded rules, and which of them block.
#[derive(Debug, Clone, Default)]
pub struct Blocking {
    pub rules: Option<Arc<RuleSet>>,
    /// Indices in `rules` of the blocking rules.
    pub indices: Vec<usize>,
}

impl Blocking {
    /// The blocking rules of `set` (none when `[rules] block` is empty).
    pub fn of(set: RuleSet) -> Blocking {
        let indices: Vec<usize> = set.blocking_rules().collect();
        Blocking {
            rules: (!indices.is_empty()).then(|| Arc::new(set)),
            indices,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Every conjunction the kernel tests, with its rule's index + 1; conjunctions past
    /// [`BLOCK_MAX`] are left out (their rules then do not block) and reported.
    pub fn kernel_plan(&self) -> (Vec<(u32, KernelConj)>, Vec<String>) {
        let mut plan = Vec::new();
        let mut left_out = Vec::new();
        let Some(set) = &self.rules else {
            return (plan, left_out);
        };
        for &i in &self.indices {
            let id = &set.rules()[i].rule_id;
            match set.kernel_block(i) {
                Ok(conjs) if plan.len() + conjs.len() <= BLOCK_MAX => {
                    let rule = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    plan.extend(conjs.into_iter().map(|c| (rule, c)));
                }
                Ok(_) => left_out.push(format!(
                    "block: rule `{id}` does not block: the kernel holds {BLOCK_MAX} blocking \
                     conditions in all"
                )),
                Err(why) => left_out.push(format!("block: rule `{id}` does not block: {why}")),
            }
        }
        (plan, left_out)
    }
}

/// The maps the exec probe reads (layouts in `src/bpf/events.h`): `block_conf`, and the
/// keys of `block_keys` (names, parent names, argument values) and `block_exes`, each with
/// the bits of the blockers that test it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelMaps {
    pub conf: Vec<u8>,
    pub keys: Vec<(Vec<u8>, [u8; 16])>,
    pub exes: Vec<(Vec<u8>, [u8; 16])>,
}

fn key(kind: u32, value: &str, cap: usize, ci: bool) -> Vec<u8> {
    let mut k = vec![0u8; 4 + cap];
    let kind = kind + u32::from(ci);
    k[..4].copy_from_slice(&kind.to_ne_bytes());
    let v = if ci {
        value.to_ascii_lowercase()
    } else {
        value.to_owned()
    };
    let n = v.len().min(cap - 1);
    k[4..4 + n].copy_from_slice(&v.as_bytes()[..n]);
    k
}

fn add_bit(list: &mut Vec<(Vec<u8>, [u8; 16])>, key: Vec<u8>, bit: usize) {
    let i = match list.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            list.push((key, [0u8; 16]));
            list.len() - 1
        }
    };
    let word = bit / 64;
    let at = word * 8;
    let mut w = u64::from_ne_bytes(list[i].1[at..at + 8].try_into().unwrap_or_default());
    w |= 1 << (bit % 64);
    list[i].1[at..at + 8].copy_from_slice(&w.to_ne_bytes());
}

/// The kernel's form of `plan` (at most [`BLOCK_MAX`] blockers: the caller cuts it).
pub fn kernel_maps(plan: &[(u32, KernelConj)]) -> KernelMaps {
    let mut m = KernelMaps::default();
    let (mut kinds, mut need_name, mut need_exe, mut need_parent, mut need_args) =
        (0u32, 0u32, 0u32, 0u32, 0u32);
    let mut arg_need = [0u64; 2];
    let mut rules = [0u16; BLOCK_MAX];
    for (k, (rule, c)) in plan.iter().take(BLOCK_MAX).enumerate() {
        rules[k] = u16::try_from(*rule).unwrap_or(0);
        if let Some(n) = &c.name {
            need_name |= 1 << k;
            kinds |= 1 << (BK_NAME + u32::from(n.ci));
            add_bit(&mut m.keys, key(BK_NAME, &n.value, BLOCK_VAL, n.ci), k);
        }
        if let Some(p) = &c.parent_name {
            need_parent |= 1 << k;
            kinds |= 1 << (BK_PARENT + u32::from(p.ci));
            add_bit(&mut m.keys, key(BK_PARENT, &p.value, BLOCK_VAL, p.ci), k);
        }
        if let Some(e) = &c.executable {
            need_exe |= 1 << k;
            kinds |= 1 << (BK_EXE + u32::from(e.ci));
            add_bit(&mut m.exes, key(BK_EXE, &e.value, BLOCK_EXE, e.ci), k);
        }
        for (j, a) in c.args.iter().take(KERNEL_ARGS_MAX).enumerate() {
            need_args |= 1 << k;
            kinds |= 1 << (BK_ARG + u32::from(a.ci));
            let bit = 4 * k + j;
            arg_need[bit / 64] |= 1 << (bit % 64);
            add_bit(&mut m.keys, key(BK_ARG, &a.value, BLOCK_VAL, a.ci), bit);
        }
    }
    let count = plan.len().min(BLOCK_MAX) as u32;
    let mut conf = Vec::with_capacity(CONF_LEN);
    for v in [count, kinds, need_name, need_exe, need_parent, need_args] {
        conf.extend_from_slice(&v.to_ne_bytes());
    }
    for v in arg_need {
        conf.extend_from_slice(&v.to_ne_bytes());
    }
    for r in rules {
        conf.extend_from_slice(&r.to_ne_bytes());
    }
    m.conf = conf;
    m
}

#[cfg(test)]
mod tests {
    use nightjar_rules::matcher::block::Exact;

    use super::*;

    fn exact(value: &str, ci: bool) -> Exact {
        Exact {
            value: value.into(),
            ci,
        }
    }

    #[test]
    fn blockers_become_keys_with_their_bits_and_a_conf() {
        let plan = vec![
            (
                3,
                KernelConj {
                    name: Some(exact("kcc", false)),
                    executable: None,
                    parent_name: Some(exact("Zsh", true)),
                    args: vec![exact("copy_cred_cache", false), exact("-V", true)],
                },
            ),
            (
                5,
                KernelConj {
                    name: None,
                    executable: Some(exact("/usr/bin/kcc", false)),
                    parent_name: None,
                    args: vec![exact("copy_cred_cache", false)],
                },
            ),
        ];
        let m = kernel_maps(&plan);
        assert_eq!(m.conf.len(), CONF_LEN);
        let u = |at: usize| u32::from_ne_bytes(m.conf[at..at + 4].try_into().unwrap());
        // count, kinds, need_name, need_exe, need_parent, need_args
        assert_eq!(u(0), 2);
        assert_eq!(
            u(4),
            1 << BK_NAME | 1 << (BK_PARENT + 1) | 1 << BK_ARG | 1 << (BK_ARG + 1) | 1 << BK_EXE
        );
        assert_eq!((u(8), u(12), u(16), u(20)), (0b01, 0b10, 0b01, 0b11));
        let need = u64::from_ne_bytes(m.conf[24..32].try_into().unwrap());
        assert_eq!(
            need,
            0b11 | 1 << 4,
            "blocker 0 needs values 0 and 1, blocker 1 value 0"
        );
        assert_eq!(u16::from_ne_bytes([m.conf[40], m.conf[41]]), 3);
        assert_eq!(u16::from_ne_bytes([m.conf[42], m.conf[43]]), 5);
        let bits = |k: &[u8]| -> u64 {
            let (_, v) = m.keys.iter().find(|(key, _)| key[..] == *k).expect("key");
            u64::from_ne_bytes(v[..8].try_into().unwrap())
        };
        assert_eq!(bits(&key(BK_NAME, "kcc", BLOCK_VAL, false)), 0b1);
        assert_eq!(
            bits(&key(BK_PARENT, "zsh", BLOCK_VAL, true)),
            0b1,
            "lowercased"
        );
        assert_eq!(
            bits(&key(BK_ARG, "copy_cred_cache", BLOCK_VAL, false)),
            1 | 1 << 4,
            "one key, both blockers' bits"
        );
        assert_eq!(bits(&key(BK_ARG, "-v", BLOCK_VAL, true)), 0b10);
        assert_eq!(m.exes.len(), 1);
        assert_eq!(m.keys[0].0.len(), 68);
        assert_eq!(m.exes[0].0.len(), 260);
    }

    #[test]
    fn the_kcc_rule_reduces_to_one_blocker() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../packaging/linux/rules/kcc-linux.toml"),
        )
        .unwrap();
        let (set, report) = RuleSet::build(nightjar_rules::Sources {
            rules: vec![nightjar_rules::SourceText {
                name: "kcc-linux.toml".into(),
                text,
            }],
            block: vec!["c4ab5c12-3447-4aaf-891b-c474270fe4d9".into()],
            ..nightjar_rules::Sources::default()
        });
        assert!(report.block_errors.is_empty(), "{report:?}");
        let blocking = Blocking::of(set);
        let (plan, left_out) = blocking.kernel_plan();
        if cfg!(target_os = "linux") {
            assert_eq!(kernel_maps(&plan).keys.len(), 2);
            assert!(left_out.is_empty(), "{left_out:?}");
            assert_eq!(plan.len(), 1);
            assert_eq!(plan[0].1.name.as_ref().unwrap().value, "kcc");
            assert_eq!(plan[0].1.args[0].value, "copy_cred_cache");
        }
    }
}
