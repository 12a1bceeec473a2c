//! libbpf's glob: `*` matches any run of characters (also none), `?` exactly one; everything
//! else matches itself; the whole name must match. No classes, no escapes.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<u8>,
    /// The literal bytes before the first wildcard: most patterns (`vfs_*`) are rejected by a
    /// prefix comparison without running the matcher.
    prefix_len: usize,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Glob {
        let pattern = pattern.as_bytes().to_vec();
        let prefix_len = pattern.iter().position(|&b| b == b'*' || b == b'?').unwrap_or(pattern.len());
        Glob { pattern, prefix_len }
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.pattern).unwrap_or("")
    }

    /// Whether the pattern has no wildcard: it names exactly one function name.
    pub fn is_literal(&self) -> bool {
        self.prefix_len == self.pattern.len()
    }

    /// The longest run of literal characters in the pattern (`sys_` in `*sys_*`): every
    /// matching name contains it. Empty for patterns of wildcards only.
    pub fn longest_literal(&self) -> &[u8] {
        self.pattern.split(|&b| b == b'*' || b == b'?').max_by_key(|run| run.len()).unwrap_or(&[])
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &[u8]) -> bool {
        if !name.starts_with(&self.pattern[..self.prefix_len]) {
            return false;
        }
        if self.is_literal() {
            return name.len() == self.pattern.len();
        }
        wildcard_match(&self.pattern[self.prefix_len..], &name[self.prefix_len..])
    }
}

/// Iterative matching with one backtrack point: on a mismatch after a `*`, retry with the
/// `*` swallowing one more character. Linear in practice, O(n·m) at worst, no recursion.
fn wildcard_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s.as_bytes())
    }

    #[test]
    fn reference_examples() {
        assert!(m("vfs_rea?", "vfs_read"));
        assert!(!m("vfs_rea?", "vfs_readv"));
        assert!(!m("vfs_rea?", "vfs_rea"));
        assert!(m("vfs_read*", "vfs_read"));
        assert!(m("vfs_read*", "vfs_readv"));
        assert!(m("vfs_read*", "vfs_readlink"));
        assert!(!m("vfs_read*", "vfs_write"));
        assert!(m("try_to_wake_up*", "try_to_wake_up.llvm.123456"));
    }

    #[test]
    fn anchoring_and_edge_cases() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(!m("", "x"));
        assert!(m("", ""));
        assert!(m("*sys_*", "__x64_sys_getpid"));
        assert!(!m("*sys_", "__x64_sys_getpid"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("a*b*c", "abbbcd"));
        assert!(m("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa"));
        assert!(m("??", "ab"));
        assert!(!m("??", "a"));
        assert!(m("a**b", "ab"));
        assert!(Glob::new("vfs_read").is_literal());
        assert_eq!(Glob::new("*sys_*").longest_literal(), b"sys_");
        assert_eq!(Glob::new("vfs_rea?").longest_literal(), b"vfs_rea");
        assert_eq!(Glob::new("a*bcd?ef").longest_literal(), b"bcd");
        assert_eq!(Glob::new("*?*").longest_literal(), b"");
        assert!(!Glob::new("vfs_rea?").is_literal());
    }

    #[test]
    fn agrees_with_a_naive_matcher() {
        fn naive(p: &[u8], s: &[u8]) -> bool {
            match (p.first(), s.first()) {
                (None, _) => s.is_empty(),
                (Some(b'*'), _) => naive(&p[1..], s) || (!s.is_empty() && naive(p, &s[1..])),
                (Some(b'?'), Some(_)) => naive(&p[1..], &s[1..]),
                (Some(&a), Some(&b)) if a == b => naive(&p[1..], &s[1..]),
                _ => false,
            }
        }
        let alphabet = [b'a', b'b', b'*', b'?'];
        let mut patterns = vec![Vec::new()];
        for _ in 0..4 {
            let next: Vec<Vec<u8>> =
                patterns.iter().flat_map(|p| alphabet.iter().map(move |&c| [p.clone(), vec![c]].concat())).collect();
            patterns.extend(next);
        }
        let names: Vec<Vec<u8>> =
            patterns.iter().filter(|p| !p.contains(&b'*') && !p.contains(&b'?')).cloned().collect();
        for p in &patterns {
            let g = Glob::new(std::str::from_utf8(p).unwrap());
            for s in &names {
                assert_eq!(g.matches(s), naive(p, s), "pattern {:?} name {:?}", p, s);
            }
        }
    }
}
