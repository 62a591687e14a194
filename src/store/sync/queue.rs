//! The engine's work queue: users marked pending one by one (`P`), and scopes (`Q`) — every user of the
//! account, or every member of a group — that a rule change or switching sync on puts up for re-evaluation.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::scim::schema::ResourceKind;
use crate::store::codec::decode;
use crate::store::keys::{AccountId, ID_LEN, child_prefix, key, kind, prefix, suffix};
use crate::store::pending::mark_pending;
use crate::store::resources::USERS;
use crate::store::sync::Provenance;
use crate::store::tx::Tx;
use crate::store::{Store, StoreResult, TxResult};

/// Per account, the users a pending reorder (named by its mark's sequence number) still owes an evaluation.
pub(crate) type ReorderOwed = HashMap<AccountId, (u64, HashSet<String>)>;

/// Who a rule change or sync switch re-evaluates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every user of the account.
    All,
    /// Every member of a directory group.
    Group(String),
    /// Every user whose deciding rule may differ after the rules were only put in another order: the set of
    /// rules that match each user is unchanged, so only users whose lowest-numbered match moved need work.
    Reorder,
}

/// The most room a page of ids reserves up front: callers may ask for "all of them".
const BATCH_HINT: usize = 1024;

const ALL: &[u8] = b"*";
const REORDER: &[u8] = b"#";

fn scope_key(acct: AccountId, scope: &Scope) -> Vec<u8> {
    match scope {
        Scope::All => key(kind::PENDING_ALL, acct, &[ALL]),
        Scope::Reorder => key(kind::PENDING_ALL, acct, &[REORDER]),
        Scope::Group(gid) => key(kind::PENDING_ALL, acct, &[gid.as_bytes()]),
    }
}

pub(crate) fn mark_scope(tx: &Tx<'_>, acct: AccountId, scope: &Scope) -> TxResult<()> {
    let seq = tx.generate_id()?;
    tx.insert(scope_key(acct, scope), &seq.to_be_bytes())?;
    Ok(())
}

/// Consumes the user's pending mark if it is still the one numbered `seq` (`None`: no mark to answer);
/// `false` when the user was marked again since, and the newer mark is left for its own evaluation.
pub(crate) fn answer_pending(tx: &Tx<'_>, acct: AccountId, uid: &str, seq: Option<u64>) -> TxResult<bool> {
    let Some(seq) = seq else { return Ok(true) };
    let pending = key(kind::PENDING, acct, &[uid.as_bytes()]);
    match tx.get(&pending)? {
        Some(v) if seq_of(&v) == seq => {
            tx.remove(pending)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn seq_of(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// The users of several scopes in one ascending id order, each once, read a page at a time: the order the
/// engine evaluates a rule change in (and a preview assumes), whichever groups it touches.
pub struct ScopesUsers<'s> {
    store: &'s Store,
    acct: AccountId,
    cursors: Vec<ScopeCursor<'s>>,
}

struct ScopeCursor<'s> {
    scope: &'s Scope,
    page: VecDeque<String>,
    after: Option<String>,
    exhausted: bool,
}

impl ScopeCursor<'_> {
    /// The scope's next user, reading the next page when this one is used up.
    fn head(&mut self, store: &Store, acct: AccountId) -> StoreResult<Option<&String>> {
        if self.page.is_empty() && !self.exhausted {
            let page = store.scope_users(acct, self.scope, self.after.as_deref(), BATCH_HINT)?;
            self.exhausted = page.len() < BATCH_HINT;
            self.after = page.last().cloned();
            self.page = page.into();
        }
        Ok(self.page.front())
    }
}

impl ScopesUsers<'_> {
    /// Up to `limit` more users; empty at the end.
    pub fn next_page(&mut self, limit: usize) -> StoreResult<Vec<String>> {
        let (store, acct) = (self.store, self.acct);
        let mut out = Vec::with_capacity(limit.min(BATCH_HINT));
        while out.len() < limit {
            let mut least: Option<String> = None;
            for cursor in &mut self.cursors {
                if let Some(head) = cursor.head(store, acct)?
                    && least.as_ref().is_none_or(|l| head < l)
                {
                    least = Some(head.clone());
                }
            }
            let Some(uid) = least else { break };
            for cursor in &mut self.cursors {
                if cursor.page.front() == Some(&uid) {
                    cursor.page.pop_front();
                }
            }
            out.push(uid);
        }
        Ok(out)
    }
}

impl Store {
    /// Accounts that have users or scopes waiting for evaluation (an account being deleted has none).
    pub fn accounts_with_work(&self) -> StoreResult<Vec<AccountId>> {
        let mut out = Vec::new();
        for account in self.accounts()?.into_iter().filter(|a| a.deleting.is_none() && !self.is_removed(a.id))
        {
            let waiting = |k: u8| self.tree().scan_prefix(prefix(k, account.id)).next().transpose();
            if waiting(kind::PENDING)?.is_some() || waiting(kind::PENDING_ALL)?.is_some() {
                out.push(account.id);
            }
        }
        Ok(out)
    }

    /// Up to `limit` pending users with the sequence number of the write that marked them.
    pub fn pending_users(&self, acct: AccountId, limit: usize) -> StoreResult<Vec<(String, u64)>> {
        self.tree()
            .scan_prefix(prefix(kind::PENDING, acct))
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((suffix(&k, false).to_string(), seq_of(&v)))
            })
            .collect()
    }

    /// Up to `limit` pending users after `after` (exclusive), in id order.
    pub fn pending_users_after(
        &self,
        acct: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>> {
        let start = prefix(kind::PENDING, acct);
        let from = match after {
            Some(id) => [start.as_slice(), id.as_bytes(), &[0]].concat(),
            None => start.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree().range(from..) {
            let (k, v) = item?;
            if !k.starts_with(&start) || out.len() == limit {
                break;
            }
            out.push((suffix(&k, false).to_string(), seq_of(&v)));
        }
        Ok(out)
    }

    /// The sequence number of the user's pending mark, if the user is marked.
    pub fn pending_seq(&self, acct: AccountId, uid: &str) -> StoreResult<Option<u64>> {
        Ok(self.tree().get(key(kind::PENDING, acct, &[uid.as_bytes()]))?.map(|v| seq_of(&v)))
    }

    pub fn pending_scopes(&self, acct: AccountId) -> StoreResult<Vec<(Scope, u64)>> {
        self.tree()
            .scan_prefix(prefix(kind::PENDING_ALL, acct))
            .map(|item| {
                let (k, v) = item?;
                let scope = match &k[5..] {
                    ALL => Scope::All,
                    REORDER => Scope::Reorder,
                    gid => Scope::Group(String::from_utf8_lossy(gid).into_owned()),
                };
                Ok((scope, seq_of(&v)))
            })
            .collect()
    }

    /// Removes a scope once evaluated, unless it was marked again meanwhile.
    pub fn finish_scope(&self, acct: AccountId, scope: &Scope, seq: u64) -> StoreResult<()> {
        let k = scope_key(acct, scope);
        self.transact(|tx| {
            if tx.get(&k)?.is_some_and(|v| seq_of(&v) == seq) {
                tx.remove(k.as_slice())?;
            }
            Ok(())
        })?;
        if *scope == Scope::Reorder {
            self.reorder_owed().remove(&acct);
        }
        Ok(())
    }

    /// Users of a scope after `after` (exclusive), in id order, at most `limit`.
    pub fn scope_users(
        &self,
        acct: AccountId,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let (start, skip_len) = match scope {
            Scope::All | Scope::Reorder => (USERS.record_prefix(acct), 5),
            Scope::Group(gid) => (child_prefix(kind::MEMBER, acct, gid), 5 + ID_LEN),
        };
        let from = match after {
            Some(id) => [start.as_slice(), id.as_bytes(), &[0]].concat(),
            None => start.clone(),
        };
        let mut out = Vec::with_capacity(limit.min(BATCH_HINT));
        for item in self.tree().range(from..) {
            let (k, _) = item?;
            if !k.starts_with(&start) || out.len() == limit {
                break;
            }
            out.push(String::from_utf8_lossy(&k[skip_len..]).into_owned());
        }
        Ok(out)
    }

    /// The users of `scopes` merged into one ascending id order, each once.
    pub fn scopes_users<'s>(&'s self, acct: AccountId, scopes: &[&'s Scope]) -> ScopesUsers<'s> {
        let cursors = scopes
            .iter()
            .map(|scope| ScopeCursor { scope, page: VecDeque::new(), after: None, exhausted: false })
            .collect();
        ScopesUsers { store: self, acct, cursors }
    }

    /// How many users are owed an evaluation, each counted once: the users marked pending, the members of
    /// pending groups, every user when the whole account is pending, and after a reorder the users whose
    /// deciding rule moved or who are failing — exactly whom the engine's passes evaluate (found once per
    /// reorder, see [`Store::find_owed_by_reorder`]).
    pub fn pending_count(&self, acct: AccountId) -> StoreResult<usize> {
        let mut owed: HashSet<String> =
            self.pending_users(acct, usize::MAX)?.into_iter().map(|(u, _)| u).collect();
        let scopes = self.pending_scopes(acct)?;
        if scopes.iter().any(|(s, _)| *s == Scope::All) {
            // Everyone, plus marked ids that are no longer users: their deletion is still to be applied.
            let mut gone = 0;
            for uid in &owed {
                gone += usize::from(!self.tree().contains_key(USERS.record_key(acct, uid))?);
            }
            return Ok(self.count(acct, ResourceKind::User) + gone);
        }
        let mut reorder = None;
        for (scope, seq) in &scopes {
            match scope {
                Scope::Group(_) => owed.extend(self.scope_users(acct, scope, None, usize::MAX)?),
                Scope::Reorder => reorder = Some(*seq),
                Scope::All => {}
            }
        }
        let owed_by_reorder = match reorder {
            Some(seq) => self.count_owed_by_reorder(acct, seq, &owed)?,
            None => 0,
        };
        Ok(owed.len() + owed_by_reorder)
    }

    /// How many users a pending reorder (marked with `seq`) still owes an evaluation besides `counted`, as
    /// last found. Finding them reads every user's entitlements, so they are found once per reorder and the
    /// engine strikes them off as it evaluates them ([`Store::reorder_evaluated`]): a client polling
    /// `pending` repeats neither the scan nor a copy of the thousands of ids a reorder can owe.
    fn count_owed_by_reorder(
        &self,
        acct: AccountId,
        seq: u64,
        counted: &HashSet<String>,
    ) -> StoreResult<usize> {
        let uncounted = |u: &&String| !counted.contains(*u);
        if let Some((_, users)) = self.reorder_owed().get(&acct).filter(|(s, _)| *s == seq) {
            return Ok(users.iter().filter(uncounted).count());
        }
        Ok(self.find_owed_by_reorder(acct, seq)?.iter().filter(uncounted).count())
    }

    /// The users the reorder marked with `seq` owes an evaluation, found now, in id order: those whose
    /// deciding rule moved, or who are failing. The engine finds them afresh when its pass starts, so that
    /// nothing an evaluation applied since an earlier count is missed.
    pub fn find_owed_by_reorder(&self, acct: AccountId, seq: u64) -> StoreResult<Vec<String>> {
        let config = self.sync_config(acct)?;
        let failing: HashSet<String> = self.failures(acct)?.into_iter().map(|(u, _)| u).collect();
        let mut owed = Vec::new();
        for item in self.tree().scan_prefix(prefix(kind::ENTITLEMENT, acct)) {
            let (k, v) = item?;
            let uid = suffix(&k, false);
            if failing.contains(uid) || config.deciding_rule_moved(&decode::<Provenance>(&v)?) {
                owed.push(uid.to_string());
            }
        }
        self.reorder_owed().insert(acct, (seq, owed.iter().cloned().collect()));
        Ok(owed)
    }

    /// The engine has evaluated these users in its reorder pass.
    pub fn reorder_evaluated(&self, acct: AccountId, uids: &[&String]) {
        if let Some((_, owed)) = self.reorder_owed().get_mut(&acct) {
            for uid in uids {
                owed.remove(*uid);
            }
        }
    }

    /// Marks users for re-evaluation (an explicit retry).
    pub fn mark_users_pending(&self, acct: AccountId, uids: &[String]) -> StoreResult<()> {
        self.transact(|tx| uids.iter().try_for_each(|uid| mark_pending(tx, acct, uid)))
    }

    /// Puts a whole scope up for re-evaluation.
    pub fn mark_scope_pending(&self, acct: AccountId, scope: &Scope) -> StoreResult<()> {
        self.transact(|tx| mark_scope(tx, acct, scope))
    }
}
