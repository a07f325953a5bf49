//! One shared copy of each tube name a replay reads, so that a million
//! jobs of a tube hold one name between them.

use std::collections::HashMap;

use crate::protocol::TubeName;

/// The tube names seen so far, found by their bytes.
#[derive(Debug, Default)]
pub(super) struct TubeNames {
    by_bytes: HashMap<Box<[u8]>, TubeName>,
    /// The name found last: records come in long runs of one tube, and
    /// comparing a few bytes costs a tenth of hashing them.
    last: Option<TubeName>,
}

impl TubeNames {
    /// The shared copy of the name `bytes` spell, if they are a valid tube
    /// name.
    pub(super) fn share(&mut self, bytes: &[u8]) -> Option<TubeName> {
        if let Some(last) = &self.last
            && last.as_str().as_bytes() == bytes
        {
            return Some(last.clone());
        }
        let tube = match self.by_bytes.get(bytes) {
            Some(tube) => tube.clone(),
            None => {
                let tube = TubeName::new(bytes)?;
                self.by_bytes.insert(bytes.into(), tube.clone());
                tube
            }
        };
        self.last = Some(tube.clone());
        Some(tube)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_one_shared_copy_and_invalid_names_are_refused() {
        let mut names = TubeNames::default();
        let a = names.share(b"a").unwrap();
        let b = names.share(b"b").unwrap();
        for (bytes, first) in [(b"a", &a), (b"a", &a), (b"b", &b), (b"a", &a)] {
            let again = names.share(bytes).unwrap();
            assert!(std::ptr::eq(again.as_str(), first.as_str()), "{bytes:?}");
        }
        assert!(names.share(b"-no").is_none());
        assert!(names.share(b"").is_none());
        assert_eq!(names.share(b"b").unwrap().as_str(), "b");
    }
}
