//! When a managed key is made, signs, and leaves the JWKS: a pure function of the keys' times and the
//! clock, so that every server sharing the store draws the same plan.
//!
//! - A key is made `PropagationDays` before it is to sign (the first key of an empty store signs at
//!   once: there is nothing to hand over from). It is published from then on.
//! - The signing key is the newest key whose activation time has come; it signs until the next key
//!   activates, `RotationDays` after its own activation (the next key is made `PropagationDays`
//!   earlier, so it is in every verifier's JWKS cache when it starts signing).
//! - A key that stopped signing stays published `RetentionDays` more (tokens it signed are still in
//!   use), then it is deleted.

/// `PropagationDays`, `RotationDays` and `RetentionDays`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub propagation: i64,
    pub rotation: i64,
    pub retention: i64,
}

/// A key's times (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub created: i64,
    pub activates: i64,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The index of the signing key (`None`: no key has activated: make one that signs at once).
    pub signing: Option<usize>,
    /// The indexes of the keys to publish, the signing key included.
    pub published: Vec<usize>,
    /// The indexes of keys past their retention: deleted.
    pub expired: Vec<usize>,
    /// A key to make now, to activate at this time.
    pub create: Option<i64>,
    /// When the plan changes next (a key activates, the next key is due, a key leaves the JWKS).
    pub next_change: Option<i64>,
    /// When each key stops signing (planned) and leaves the JWKS, by index.
    pub retires: Vec<i64>,
    pub unpublished_at: Vec<i64>,
}

/// The plan at `now` for `keys` (in any order).
pub fn plan(keys: &[KeyTimes], policy: Policy, now: i64) -> Plan {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (keys[i].activates, keys[i].created));
    let mut retires = vec![0; keys.len()];
    let mut unpublished_at = vec![0; keys.len()];
    for (position, &i) in order.iter().enumerate() {
        let planned = keys[i].activates.saturating_add(policy.rotation);
        // It signs until its successor activates (later than planned when that one came late).
        let stops = match order.get(position + 1) {
            Some(&next) => keys[next].activates.max(planned),
            None => planned,
        };
        retires[i] = stops;
        unpublished_at[i] = stops.saturating_add(policy.retention);
    }
    let signing = order
        .iter()
        .rev()
        .copied()
        .find(|&i| keys[i].activates <= now);
    let newest = order.last().copied();
    let mut published = Vec::new();
    let mut expired = Vec::new();
    for &i in &order {
        // The newest key and the signing key are always published, whatever their planned times.
        if now < unpublished_at[i] || Some(i) == signing || Some(i) == newest {
            published.push(i);
        } else {
            expired.push(i);
        }
    }
    let create = match (signing, newest) {
        (None, _) => Some(now),
        // A key waits to activate: nothing to make.
        (Some(s), Some(n)) if s != n => None,
        (Some(s), _) => {
            let due = keys[s]
                .activates
                .saturating_add(policy.rotation)
                .saturating_sub(policy.propagation);
            (now >= due).then(|| now.saturating_add(policy.propagation))
        }
    };
    let mut changes: Vec<i64> = Vec::new();
    for &i in &order {
        if keys[i].activates > now {
            changes.push(keys[i].activates);
        }
        if unpublished_at[i] > now {
            changes.push(unpublished_at[i]);
        }
    }
    if let (Some(s), None) = (signing, create) {
        let due = keys[s]
            .activates
            .saturating_add(policy.rotation)
            .saturating_sub(policy.propagation);
        if due > now && Some(s) == newest {
            changes.push(due);
        }
    }
    Plan {
        signing,
        published,
        expired,
        create,
        next_change: changes.into_iter().min(),
        retires,
        unpublished_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const POLICY: Policy = Policy {
        propagation: 14 * DAY,
        rotation: 90 * DAY,
        retention: 14 * DAY,
    };

    /// Runs the schedule over `days`, a check a day, making keys as planned: the keys made.
    fn simulate(days: i64) -> Vec<KeyTimes> {
        let mut keys: Vec<KeyTimes> = Vec::new();
        for day in 0..=days {
            let now = day * DAY;
            let p = plan(&keys, POLICY, now);
            if let Some(activates) = p.create {
                keys.push(KeyTimes {
                    created: now,
                    activates,
                });
            }
            let p = plan(&keys, POLICY, now);
            assert!(p.signing.is_some(), "day {day}: a key signs");
            for i in p.expired.iter().rev() {
                keys.remove(*i);
            }
        }
        keys
    }

    #[test]
    fn the_first_key_signs_at_once_and_the_next_is_published_two_weeks_before_it_signs() {
        let p = plan(&[], POLICY, 0);
        assert_eq!(p.create, Some(0));
        let first = KeyTimes {
            created: 0,
            activates: 0,
        };
        let p = plan(&[first], POLICY, 0);
        assert_eq!((p.signing, p.create), (Some(0), None));
        assert_eq!(p.next_change, Some(76 * DAY));
        // Day 76 = 90 - 14: the next key is made, published, not signing.
        let p = plan(&[first], POLICY, 76 * DAY);
        assert_eq!(p.create, Some(90 * DAY));
        let second = KeyTimes {
            created: 76 * DAY,
            activates: 90 * DAY,
        };
        let keys = [first, second];
        let p = plan(&keys, POLICY, 80 * DAY);
        assert_eq!((p.signing, p.published.clone()), (Some(0), vec![0, 1]));
        assert_eq!(p.create, None);
        // Day 90: the second signs, the first stays published 14 days.
        let p = plan(&keys, POLICY, 90 * DAY);
        assert_eq!((p.signing, p.published.clone()), (Some(1), vec![0, 1]));
        assert_eq!(p.unpublished_at[0], 104 * DAY);
        let p = plan(&keys, POLICY, 104 * DAY);
        assert_eq!(
            (p.signing, p.published.clone(), p.expired.clone()),
            (Some(1), vec![1], vec![0])
        );
    }

    #[test]
    fn over_a_year_at_most_three_keys_exist_and_one_is_made_per_rotation() {
        let keys = simulate(400);
        assert!(keys.len() <= 3, "{keys:?}");
        // Keys activated at 0, 90, 180, 270 and 360; each left the JWKS 14 days after the next signed.
        let activations: Vec<i64> = keys.iter().map(|k| k.activates / DAY).collect();
        assert_eq!(activations, vec![360]);
        // Day 436 (450 - 14): the next one is made and published.
        let keys = simulate(440);
        let activations: Vec<i64> = keys.iter().map(|k| k.activates / DAY).collect();
        assert_eq!(activations, vec![360, 450]);
        let made: Vec<i64> = keys.iter().map(|k| k.created / DAY).collect();
        assert_eq!(made, vec![346, 436]);
    }

    #[test]
    fn a_server_down_past_the_rotation_keeps_signing_until_the_late_key_activates() {
        let first = KeyTimes {
            created: 0,
            activates: 0,
        };
        // Nobody looked between day 70 and day 100.
        let p = plan(&[first], POLICY, 100 * DAY);
        assert_eq!(p.signing, Some(0));
        assert_eq!(p.create, Some(114 * DAY));
        let second = KeyTimes {
            created: 100 * DAY,
            activates: 114 * DAY,
        };
        let p = plan(&[first, second], POLICY, 110 * DAY);
        assert_eq!(
            p.signing,
            Some(0),
            "still the first: the second is propagating"
        );
        assert_eq!(p.unpublished_at[0], 128 * DAY);
    }
}
