//! The directory and rules that both rule-engine benchmarks build, `examples/reevaluate.rs` in process and
//! workload 4 of `examples/loadgen.rs` over HTTP, so that their figures describe the same work: 50 groups,
//! one rule per group (rule `g + 1` names group `g`), every user in one group and every fifth user in a
//! second one, where the order of the rules decides.

// Each example uses its part.
#![allow(dead_code)]

/// Directory groups, and rules: one per group.
pub const GROUPS: usize = 50;

/// The products the rules grant; unlimited seats, none requires another.
pub const PRODUCTS: [&str; 3] = ["meeting", "webinar", "training"];

/// The groups user `i` is a member of.
pub fn groups_of(i: usize) -> impl Iterator<Item = usize> {
    std::iter::once(i % GROUPS).chain(i.is_multiple_of(5).then_some((i + 1) % GROUPS))
}

/// User `i`'s `title`, which some rules filter on.
pub fn title(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "Engineer" } else { "Sales" }
}

/// The title that group `g`'s rule requires (every seventh rule has a filter), compared case-insensitively.
pub fn filter_title(g: usize) -> Option<&'static str> {
    g.is_multiple_of(7).then_some("engineer")
}

/// Group `g`'s rule's filter, as the rule carries it.
pub fn filter(g: usize) -> Option<String> {
    filter_title(g).map(|t| format!("title eq \"{t}\""))
}

/// The products of group `g`'s rule. The rules of neighbouring groups differ, so a user of two groups
/// changes bundle whenever the other rule starts to decide.
pub fn bundle(g: usize) -> &'static [&'static str] {
    const BUNDLES: [&[&str]; 3] = [&["meeting"], &["meeting", "webinar"], &["training"]];
    BUNDLES[g % 3]
}
