//! The arguments of a running process as macOS's `KERN_PROCARGS2` sysctl returns them
//! (used to seed the process cache at start; parsed here so that it is tested everywhere).

/// `KERN_PROCARGS2`: a native `int` argc, the executable path, NUL padding, then argc
/// NUL-terminated arguments (the environment follows).
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) fn parse(buf: &[u8]) -> Vec<String> {
    let Some(head) = buf.get(..4) else {
        return Vec::new();
    };
    let argc = i32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
    let rest = &buf[4..];
    let Some(path_end) = rest.iter().position(|&b| b == 0) else {
        return Vec::new();
    };
    let mut rest = &rest[path_end..];
    while let Some((&0, tail)) = rest.split_first() {
        rest = tail;
    }
    rest.split(|&b| b == 0)
        .take(usize::try_from(argc).unwrap_or(0))
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn buf(argc: i32, parts: &[&[u8]]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    }

    #[test]
    fn arguments_follow_the_path_and_its_padding_and_stop_before_the_environment() {
        let b = buf(
            3,
            &[
                b"/usr/bin/login\0\0\0\0",
                b"login\0-pf\0alice\0",
                b"TERM=xterm\0HOME=/Users/alice\0",
            ],
        );
        assert_eq!(parse(&b), ["login", "-pf", "alice"]);
    }

    #[test]
    fn short_or_pathless_buffers_give_nothing() {
        assert!(parse(&[1, 0]).is_empty());
        assert!(parse(&buf(1, &[b"/no/terminator"])).is_empty());
        assert!(parse(&buf(0, &[b"/bin/sh\0\0sh\0"])).is_empty());
    }
}
