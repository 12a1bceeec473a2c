//! Large attaches that the kernel refuses in part: split and retry.
//!
//! Two refusals are about part of a set rather than the whole: ENOMEM on 6.7 to 6.11, whose
//! probe memory pool fails for big sets (halving the batch works around it, as retsnoop
//! does), and one target the kernel cannot trace, which fails the whole link without saying
//! which (bisection finds it; then it either fails the attach, named, or is skipped).
//!
//! A refusal of the request itself (a mode or link type the kernel does not take) also
//! comes as EINVAL, for the whole set and for every part of it; bisection alone would pin it
//! on the first target. So before blaming a target for EINVAL, while nothing has been
//! accepted yet, the others are tried alone: if every one is refused too, the failure is
//! the kernel's, not a target's.

use std::io;

/// What to do with a target the kernel refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rejected {
    /// Fail the attach and name the target (everything attached so far is detached).
    #[default]
    Fail,
    /// Leave the target out and attach the rest; the link lists what was skipped.
    Skip,
}

/// The outcome of a split attach: links for the accepted targets, and the targets skipped.
#[derive(Debug)]
pub(crate) struct Split<L> {
    pub links: Vec<L>,
    pub skipped: Vec<usize>,
}

/// Why a split attach failed: the kernel's error and, when bisection pinned it down, the
/// one target at fault.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: io::Error,
    pub target: Option<usize>,
    /// Every target alone got the same EINVAL: the kernel refuses the request.
    pub every_target: bool,
}

/// Errnos with which the kernel refuses a set because of one of its targets: ESRCH (unknown
/// name, 5.19+), EINVAL (unknown name on 5.18, untraceable address on 6.x), ENOENT
/// (untraceable address, 7.x).
fn is_rejection(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EINVAL | libc::ENOENT))
}

/// Attaches targets `0..n` with `create` (which gets the indices of a subset), splitting
/// on ENOMEM and bisecting on rejections. `single` retries one rejected target another way
/// (by name instead of address) and may rescue it.
pub(crate) fn attach_split<L>(
    n: usize,
    rejected: Rejected,
    create: &mut dyn FnMut(&[usize]) -> io::Result<L>,
    single: &mut dyn FnMut(usize) -> Option<L>,
) -> Result<Split<L>, Failure> {
    let all: Vec<usize> = (0..n).collect();
    let mut out = Split { links: Vec::new(), skipped: Vec::new() };
    let mut state = State { n, rejected, create, single, out: &mut out, witnessed: false };
    go(&all, &mut state)?;
    Ok(out)
}

struct State<'a, L> {
    n: usize,
    rejected: Rejected,
    create: &'a mut dyn FnMut(&[usize]) -> io::Result<L>,
    single: &'a mut dyn FnMut(usize) -> Option<L>,
    out: &'a mut Split<L>,
    /// Some target was accepted (alone or in a set), so EINVAL is about targets.
    witnessed: bool,
}

/// Whether any target other than `i` is accepted alone; the link made to find out is
/// dropped (detached) at once. Stops at the first one accepted, so it costs one call when
/// `i` really is at fault, and one per target when the kernel refuses everything.
fn another_is_accepted<L>(i: usize, s: &mut State<'_, L>) -> bool {
    (0..s.n).filter(|&j| j != i).any(|j| match (s.create)(&[j]) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EINVAL),
    })
}

fn go<L>(idx: &[usize], s: &mut State<'_, L>) -> Result<(), Failure> {
    let error = match (s.create)(idx) {
        Ok(link) => {
            s.out.links.push(link);
            s.witnessed = true;
            return Ok(());
        }
        Err(e) => e,
    };
    let enomem = error.raw_os_error() == Some(libc::ENOMEM);
    if idx.len() > 1 && (enomem || is_rejection(&error)) {
        let (left, right) = idx.split_at(idx.len() / 2);
        go(left, s)?;
        return go(right, s);
    }
    if idx.len() == 1 && is_rejection(&error) {
        if let Some(link) = (s.single)(idx[0]) {
            s.out.links.push(link);
            s.witnessed = true;
            return Ok(());
        }
        if error.raw_os_error() == Some(libc::EINVAL) && !s.witnessed {
            if !another_is_accepted(idx[0], s) {
                return Err(Failure { error, target: None, every_target: true });
            }
            s.witnessed = true;
        }
        if s.rejected == Rejected::Skip {
            s.out.skipped.push(idx[0]);
            return Ok(());
        }
        return Err(Failure { error, target: Some(idx[0]), every_target: false });
    }
    Err(Failure { error, target: None, every_target: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for BPF_LINK_CREATE with the kernel's two partial refusals: targets in
    /// `bad` fail a set with `bad_errno`, and sets larger than `max` fail with ENOMEM.
    struct Kernel {
        bad: Vec<usize>,
        bad_errno: i32,
        max: usize,
        calls: usize,
    }

    impl Kernel {
        fn create(&mut self, idx: &[usize]) -> io::Result<Vec<usize>> {
            self.calls += 1;
            if idx.len() > self.max {
                return Err(io::Error::from_raw_os_error(libc::ENOMEM));
            }
            if idx.iter().any(|i| self.bad.contains(i)) {
                return Err(io::Error::from_raw_os_error(self.bad_errno));
            }
            Ok(idx.to_vec())
        }
    }

    fn run(k: &mut Kernel, n: usize, rejected: Rejected) -> Result<Split<Vec<usize>>, Failure> {
        attach_split(n, rejected, &mut |idx| k.create(idx), &mut |_| None)
    }

    fn attached(s: &Split<Vec<usize>>) -> Vec<usize> {
        let mut v: Vec<usize> = s.links.iter().flatten().copied().collect();
        v.sort();
        v
    }

    #[test]
    fn one_call_when_the_kernel_takes_everything() {
        let mut k = Kernel { bad: vec![], bad_errno: libc::ESRCH, max: usize::MAX, calls: 0 };
        let s = run(&mut k, 1000, Rejected::Fail).unwrap();
        assert_eq!((s.links.len(), k.calls), (1, 1));
    }

    #[test]
    fn enomem_halves_the_batch_until_it_fits() {
        let mut k = Kernel { bad: vec![], bad_errno: libc::ESRCH, max: 300, calls: 0 };
        let s = run(&mut k, 1000, Rejected::Fail).unwrap();
        assert_eq!(attached(&s), (0..1000).collect::<Vec<_>>());
        assert!(s.links.iter().all(|l| l.len() <= 300));
        assert_eq!(s.links.len(), 4);
    }

    #[test]
    fn a_rejected_target_is_named_or_skipped() {
        for errno in [libc::ESRCH, libc::EINVAL, libc::ENOENT] {
            let mut k = Kernel { bad: vec![613], bad_errno: errno, max: usize::MAX, calls: 0 };
            let f = run(&mut k, 1000, Rejected::Fail).unwrap_err();
            assert_eq!(f.target, Some(613));
            assert!(k.calls <= 2 * 11, "bisection is logarithmic: {} calls", k.calls);

            let mut k = Kernel { bad: vec![3, 613, 614], bad_errno: errno, max: 500, calls: 0 };
            let s = run(&mut k, 1000, Rejected::Skip).unwrap();
            assert_eq!(s.skipped, vec![3, 613, 614]);
            let want: Vec<usize> = (0..1000).filter(|i| ![3, 613, 614].contains(i)).collect();
            assert_eq!(attached(&s), want);
        }
    }

    #[test]
    fn other_errors_stop_at_once() {
        let mut k = Kernel { bad: vec![5], bad_errno: libc::EPERM, max: usize::MAX, calls: 0 };
        let f = run(&mut k, 100, Rejected::Skip).unwrap_err();
        assert_eq!((f.target, f.error.raw_os_error(), k.calls), (None, Some(libc::EPERM), 1));
    }

    #[test]
    fn einval_from_every_target_alone_is_the_kernels_refusal() {
        for rejected in [Rejected::Fail, Rejected::Skip] {
            let mut k = Kernel { bad: (0..100).collect(), bad_errno: libc::EINVAL, max: usize::MAX, calls: 0 };
            let f = run(&mut k, 100, rejected).unwrap_err();
            assert_eq!((f.target, f.every_target), (None, true));
        }
        // One target alone is refused, but another is taken: the first is at fault.
        let mut k = Kernel { bad: vec![0], bad_errno: libc::EINVAL, max: usize::MAX, calls: 0 };
        let f = run(&mut k, 100, Rejected::Fail).unwrap_err();
        assert_eq!((f.target, f.every_target), (Some(0), false));
        // ESRCH names a target whatever the others get.
        let mut k = Kernel { bad: (0..4).collect(), bad_errno: libc::ESRCH, max: usize::MAX, calls: 0 };
        let f = run(&mut k, 4, Rejected::Fail).unwrap_err();
        assert_eq!((f.target, f.every_target), (Some(0), false));
    }

    #[test]
    fn a_single_retry_can_rescue_a_target() {
        let mut k = Kernel { bad: vec![7], bad_errno: libc::EINVAL, max: usize::MAX, calls: 0 };
        let s = attach_split(10, Rejected::Fail, &mut |idx| k.create(idx), &mut |i| Some(vec![i])).unwrap();
        assert_eq!(attached(&s), (0..10).collect::<Vec<_>>());
        assert!(s.skipped.is_empty());
    }
}
