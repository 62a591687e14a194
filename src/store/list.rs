//! Listing and searching: filters that name an indexed attribute (`id`, `userName` / `displayName`,
//! `externalId`, and `or` chains of them) are answered from the indexes; other filters scan the account's
//! records with the evaluator, holding only the requested page (and, when sorting, one small key per match).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::codec::decode;
use super::keys::AccountId;
use super::resources::{Family, family};
use super::{Store, StoreError, StoreResult, check_id};
use crate::scim::ScimError;
use crate::scim::filter::{CompareOp, Filter, Literal, matches};
use crate::scim::project::{SortKey, SortSpec};
use crate::scim::schema::{ResourceKind, ResourceSchema};

/// One page request. `start_index` is 1-based and `count` already capped by the caller.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub filter: Option<&'a Filter>,
    pub start_index: usize,
    pub count: usize,
    pub sort_by: Option<&'a str>,
    pub descending: bool,
}

/// One page of results and the number of resources that match in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    pub total: usize,
    pub resources: Vec<Value>,
}

/// Page starts remembered per account and resource type.
const REMEMBERED_PAGES: usize = 64;

/// Most matches a sorted list will order; a wider sort is refused with `tooMany`.
pub const SORT_LIMIT: usize = 200_000;

impl Store {
    pub fn list(
        &self,
        acct: AccountId,
        kind: ResourceKind,
        schema: &ResourceSchema,
        q: &ListQuery<'_>,
    ) -> StoreResult<ListPage> {
        let fam = family(kind);
        let skip = q.start_index.saturating_sub(1);
        if let Some(ids) = q.filter.map(|f| self.indexed_candidates(acct, fam, f)).transpose()?.flatten() {
            let docs = ids.iter().filter_map(|id| fam.get(self, acct, id).transpose());
            return self.window(acct, schema, q, docs, skip);
        }
        if q.filter.is_none() && q.sort_by.is_none() {
            let total = self.count(acct, kind);
            let resources = self.page(acct, fam, skip, q.count)?;
            return Ok(ListPage { total, resources });
        }
        let docs = self.tree().scan_prefix(fam.record_prefix(acct)).values().map(|v| decode(&v?));
        self.window(acct, schema, q, docs, skip)
    }

    /// `count` resources from position `skip` in id order. Clients page through a list in order
    /// (`startIndex=1`, `101`, ...), so the key where each page ends is remembered and the next page starts
    /// there instead of stepping over everything before it; any create or delete forgets the positions.
    fn page(&self, acct: AccountId, fam: &Family, skip: usize, count: usize) -> StoreResult<Vec<Value>> {
        let population = self.population(acct, fam.kind);
        let generation = population.generation.load(Ordering::SeqCst);
        let prefix = fam.record_prefix(acct);
        let (from, mut to_skip) = {
            let pages = population.pages.lock().unwrap_or_else(|p| p.into_inner());
            match (pages.0 == generation).then(|| pages.1.range(..=skip).next_back()).flatten() {
                Some((&at, key)) => (key.to_vec(), skip - at),
                None => (prefix.clone(), skip),
            }
        };
        let mut out = Vec::with_capacity(count.min(1024));
        let mut next_key = None;
        for item in self.tree().range(from..) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            if to_skip > 0 {
                to_skip -= 1;
                continue;
            }
            if out.len() == count {
                next_key = Some(key);
                break;
            }
            out.push(decode(&value)?);
        }
        if let Some(key) = next_key {
            let mut pages = population.pages.lock().unwrap_or_else(|p| p.into_inner());
            if population.generation.load(Ordering::SeqCst) == generation {
                if pages.0 != generation {
                    *pages = (generation, Default::default());
                }
                pages.1.insert(skip + count, key);
                while pages.1.len() > REMEMBERED_PAGES {
                    pages.1.pop_first();
                }
            }
        }
        Ok(out)
    }

    /// The ids an index lookup yields for `filter`, a superset of its matches; `None` when no index helps.
    fn indexed_candidates(
        &self,
        acct: AccountId,
        fam: &Family,
        filter: &Filter,
    ) -> StoreResult<Option<BTreeSet<String>>> {
        let Some(terms) = filter.index_terms(&["id", fam.name_attr, "externalId"]) else { return Ok(None) };
        let mut ids = BTreeSet::new();
        for term in terms {
            match term.attr.as_str() {
                "id" if check_id(fam.kind, &term.value).is_ok() => {
                    ids.insert(term.value);
                }
                "id" => {}
                "externalId" => ids.extend(fam.ids_by_external_id(self, acct, &term.value)?),
                _ => ids.extend(fam.id_by_name(self, acct, &term.value)?),
            }
        }
        Ok(Some(ids))
    }

    /// Filters and sorts `docs`, keeping only the page.
    fn window(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        q: &ListQuery<'_>,
        docs: impl Iterator<Item = StoreResult<Value>>,
        skip: usize,
    ) -> StoreResult<ListPage> {
        let sort = q.sort_by.map(|s| SortSpec::new(schema, s, q.descending)).transpose()?.flatten();
        let mut total = 0;
        let mut page = Vec::new();
        let mut keyed: Vec<(SortKey, String)> = Vec::new();
        for doc in docs {
            let doc = doc?;
            if let Some(filter) = q.filter
                && !matches(filter, &self.with_filtered_relations(acct, schema.kind, filter, &doc)?, schema)
            {
                continue;
            }
            total += 1;
            match &sort {
                Some(_) if keyed.len() >= SORT_LIMIT => {
                    return Err(StoreError::Invalid(ScimError::new(
                        crate::scim::ScimType::TooMany,
                        format!("sorting more than {SORT_LIMIT} resources; narrow the filter"),
                    )));
                }
                Some(spec) => keyed.push((spec.key(&doc), id_of(&doc))),
                None if total > skip && page.len() < q.count => page.push(doc),
                None => {}
            }
        }
        if let Some(spec) = &sort {
            keyed.sort_by(|(a, _), (b, _)| spec.compare(a, b));
            let fam = family(schema.kind);
            for (_, id) in keyed.into_iter().skip(skip).take(q.count) {
                page.extend(fam.get(self, acct, &id)?);
            }
        }
        Ok(ListPage { total, resources: page })
    }

    /// The document with the relations a filter refers to attached (`members` of a group, `groups` of a
    /// user), loading only the members the filter names when it names them by id.
    fn with_filtered_relations(
        &self,
        acct: AccountId,
        kind: ResourceKind,
        filter: &Filter,
        doc: &Value,
    ) -> StoreResult<Value> {
        let id = id_of(doc);
        let mut doc = doc.clone();
        match kind {
            ResourceKind::Group if filter.mentions("members") => {
                let members = match named_members(filter) {
                    Some(ids) => self.members_among(acct, &id, &ids)?,
                    None => self.members(acct, &id)?,
                };
                doc["members"] = members.iter().map(|m| m.to_json()).collect();
            }
            ResourceKind::User if filter.mentions("groups") => {
                let groups = self.user_groups(acct, &id)?;
                doc["groups"] =
                    groups.into_iter().map(|(g, d)| serde_json::json!({"value": g, "display": d})).collect();
            }
            _ => {}
        }
        Ok(doc)
    }
}

fn id_of(doc: &Value) -> String {
    doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The member ids a filter compares `members` / `members.value` with by equality, when that is the only
/// way it refers to members (Entra's `id eq "g" and members eq "u"`); `None` when it needs the whole list.
fn named_members(filter: &Filter) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    collect_named_members(filter, &mut ids, false).then_some(ids)
}

fn collect_named_members(filter: &Filter, ids: &mut Vec<String>, inside_members: bool) -> bool {
    let is_members = |name: &str| name.eq_ignore_ascii_case("members");
    let is_value = |sub: Option<&String>| sub.is_none_or(|s| s.eq_ignore_ascii_case("value"));
    match filter {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().all(|f| collect_named_members(f, ids, inside_members)),
        Filter::Not(f) => collect_named_members(f, ids, inside_members),
        Filter::Compare(path, op, lit) => {
            let about_members =
                if inside_members { path.name.eq_ignore_ascii_case("value") } else { is_members(&path.name) };
            if !about_members && !inside_members {
                return true;
            }
            match (op, lit) {
                (CompareOp::Eq, Literal::String(s))
                    if about_members && (inside_members || is_value(path.sub.as_ref())) =>
                {
                    ids.push(s.clone());
                    true
                }
                _ => false,
            }
        }
        Filter::Present(path) => !is_members(&path.name) && !inside_members,
        Filter::ValuePath(path, inner) if is_members(&path.name) => collect_named_members(inner, ids, true),
        Filter::ValuePath(..) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalize;
    use crate::store::Actor;
    use crate::store::testing::temp_store;

    #[test]
    fn remembered_page_starts_give_the_same_pages_as_stepping() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("a").unwrap().0.id;
        let registry = store.registry(acct);
        let users = registry.resource(ResourceKind::User);
        let mut ids = Vec::new();
        for i in 0..30 {
            let input = normalize(users, &serde_json::json!({"userName": format!("u{i}")})).unwrap();
            ids.push(
                store.create_user(acct, users, &input, &Actor::engine()).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let page = |start: usize, count: usize| -> Vec<String> {
            let q = ListQuery { start_index: start, count, ..ListQuery::default() };
            store.list(acct, ResourceKind::User, users, &q).unwrap().resources.iter().map(id_of).collect()
        };
        for round in 0..2 {
            let mut seen = Vec::new();
            for start in (1..=ids.len()).step_by(7) {
                seen.extend(page(start, 7));
            }
            assert_eq!(seen, ids, "round {round}");
        }
        assert_eq!(page(16, 3), ids[15..18].to_vec(), "a position between remembered ones");
        store.delete_user(acct, &ids[3], None, &Actor::engine()).unwrap();
        ids.remove(3);
        assert_eq!(page(8, 7), ids[7..14].to_vec(), "positions are forgotten after a delete");
        assert_eq!(page(29, 7), ids[28..].to_vec());
        assert_eq!(page(30, 7), Vec::<String>::new());
    }

    #[test]
    fn member_ids_named_by_equality_are_collected() {
        let f = crate::scim::filter::parse_filter("id eq \"g\" and members eq \"u\"").unwrap();
        assert_eq!(named_members(&f), Some(vec!["u".to_string()]));
        let f = crate::scim::filter::parse_filter("members[value eq \"a\" or value eq \"b\"]").unwrap();
        assert_eq!(named_members(&f), Some(vec!["a".to_string(), "b".to_string()]));
        let f = crate::scim::filter::parse_filter("members.value eq \"a\" or displayName sw \"x\"").unwrap();
        assert_eq!(named_members(&f), Some(vec!["a".to_string()]));
        for whole in
            ["members pr", "members co \"a\"", "members[display eq \"x\"]", "members.display eq \"x\""]
        {
            let f = crate::scim::filter::parse_filter(whole).unwrap();
            assert_eq!(named_members(&f), None, "{whole}");
        }
    }
}
