//! Which gradients travel together: the bucket plan.

/// Where one parameter's gradient sits in the flat buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The bucket, in the order buckets are all-reduced.
    pub bucket: usize,
    /// The first element of the gradient in the bucket.
    pub offset: usize,
    /// Its element count.
    pub len: usize,
}

/// The gradients of a model split into buckets, each all-reduced as one
/// message.
///
/// Parameters are taken in **reverse** state-dict order, because backward
/// produces the last layer's gradients first; a bucket is closed when the
/// next parameter would take it past its cap, and a parameter is never split
/// (a parameter larger than the cap is a bucket of its own). The first bucket
/// has a smaller cap, so the first message leaves as early as possible.
///
/// ```
/// use ember_distributed::BucketPlan;
///
/// // The classic MLP: 784·512 + 512, 512·512 + 512, 512·10 + 10 parameters.
/// let sizes = [401_408, 512, 262_144, 512, 5_120, 10];
/// let plan = BucketPlan::new(&sizes, 64 * 1024, 256 * 1024);
/// assert_eq!(plan.bucket_lens(), vec![5_642, 262_144, 512, 401_408]);
/// assert_eq!(plan.slot(5).bucket, 0); // the last bias travels first
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPlan {
    slots: Vec<Slot>,
    lens: Vec<usize>,
    members: Vec<Vec<usize>>,
}

impl BucketPlan {
    /// Plans buckets for parameters of `sizes` elements (state-dict order):
    /// at most `first_cap` elements in the first bucket, `cap` in the others.
    ///
    /// # Panics
    /// If a cap is 0.
    #[track_caller]
    pub fn new(sizes: &[usize], first_cap: usize, cap: usize) -> BucketPlan {
        assert!(
            first_cap > 0 && cap > 0,
            "BucketPlan::new: caps {first_cap} and {cap} must be at least 1"
        );
        let mut slots = vec![
            Slot {
                bucket: 0,
                offset: 0,
                len: 0
            };
            sizes.len()
        ];
        let mut lens: Vec<usize> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for p in (0..sizes.len()).rev() {
            let len = sizes[p];
            let limit = if lens.len() <= 1 { first_cap } else { cap };
            let fits = lens.last().is_some_and(|&l| l + len <= limit || l == 0);
            if !fits {
                lens.push(0);
                members.push(Vec::new());
            }
            let bucket = lens.len() - 1;
            slots[p] = Slot {
                bucket,
                offset: lens[bucket],
                len,
            };
            lens[bucket] += len;
            members[bucket].push(p);
        }
        BucketPlan {
            slots,
            lens,
            members,
        }
    }

    /// Where parameter `p` (state-dict index) goes.
    ///
    /// # Panics
    /// If `p` is out of range.
    pub fn slot(&self, p: usize) -> Slot {
        self.slots[p]
    }

    /// The element count of each bucket, in all-reduce order.
    pub fn bucket_lens(&self) -> Vec<usize> {
        self.lens.clone()
    }

    /// The parameters (state-dict indices) in bucket `b`.
    pub fn members(&self, b: usize) -> &[usize] {
        &self.members[b]
    }

    /// How many buckets.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there are no buckets (a model without parameters).
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_has_one_place_and_buckets_are_packed() {
        let sizes = [7, 1, 30, 2, 2, 9, 4];
        let plan = BucketPlan::new(&sizes, 5, 12);
        let lens = plan.bucket_lens();
        assert_eq!(lens.iter().sum::<usize>(), sizes.iter().sum::<usize>());
        for (b, members) in (0..plan.len()).map(|b| (b, plan.members(b))) {
            let mut end = 0;
            for &p in members {
                let s = plan.slot(p);
                assert_eq!((s.bucket, s.offset, s.len), (b, end, sizes[p]));
                end += s.len;
            }
            assert_eq!(end, lens[b]);
        }
        // Reverse order: 4 | 9 2 | 2 | 30 | 1 7
        assert_eq!(lens, vec![4, 11, 2, 30, 8]);
    }

    #[test]
    fn no_parameters_no_buckets() {
        assert!(BucketPlan::new(&[], 1, 1).is_empty());
    }
}
