//! Windows command lines into `process.args`, the way `CommandLineToArgvW` splits them (the
//! product's `args` follow it: quotes removed, runs of spaces collapsed).

/// Splits a command line into arguments.
///
/// The program name ends at the first space, or at the closing quote if it starts with one
/// (no escapes in it). Then: spaces and tabs separate arguments outside quotes; `2n`
/// backslashes before a quote give `n` backslashes and the quote toggles quoting; `2n+1` give
/// `n` and a literal quote; `""` inside quotes is a literal quote; other backslashes are
/// literal.
pub fn split(command_line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let chars: Vec<char> = command_line.chars().collect();
    let mut i = 0;
    if chars.is_empty() {
        return args;
    }
    // argv[0]
    let mut program = String::new();
    if chars[0] == '"' {
        i = 1;
        while i < chars.len() && chars[i] != '"' {
            program.push(chars[i]);
            i += 1;
        }
        i += 1; // the closing quote, if any
    } else {
        while i < chars.len() && !matches!(chars[i], ' ' | '\t') {
            program.push(chars[i]);
            i += 1;
        }
    }
    args.push(program);

    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut arg = String::new();
        let mut quoted = false;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let start = i;
                while i < chars.len() && chars[i] == '\\' {
                    i += 1;
                }
                let n = i - start;
                if i < chars.len() && chars[i] == '"' {
                    arg.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        arg.push('"');
                        i += 1;
                    }
                } else {
                    arg.extend(std::iter::repeat_n('\\', n));
                }
                continue;
            }
            if c == '"' {
                if quoted && chars.get(i + 1) == Some(&'"') {
                    arg.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                i += 1;
                continue;
            }
            if !quoted && matches!(c, ' ' | '\t') {
                break;
            }
            arg.push(c);
            i += 1;
        }
        args.push(arg);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_like_command_line_to_argv() {
        assert_eq!(
            split(r#""C:\Windows\system32\cmd.exe" /c "C:\Windows\system32\net.exe view /all""#),
            [
                r"C:\Windows\system32\cmd.exe",
                "/c",
                r"C:\Windows\system32\net.exe view /all"
            ]
        );
        assert_eq!(
            split(r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" "#),
            [r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"]
        );
        assert_eq!(
            split("powershell  -ExecutionPolicy Unrestricted -File script0.ps1"),
            [
                "powershell",
                "-ExecutionPolicy",
                "Unrestricted",
                "-File",
                "script0.ps1"
            ]
        );
        assert_eq!(
            split(r#"a.exe "x\"y" z\\"w v" q\\\\"#),
            ["a.exe", "x\"y", r"z\w v", r"q\\\\"]
        );
        assert_eq!(split(r#"a.exe "say ""hi""""#), ["a.exe", r#"say "hi""#]);
        assert_eq!(split(r#"C:\a\b.exe arg"#), [r"C:\a\b.exe", "arg"]);
    }

    #[test]
    fn odd_input_never_panics() {
        assert!(split("").is_empty());
        assert_eq!(split("\""), [""]);
        assert_eq!(split("x \"unterminated"), ["x", "unterminated"]);
        assert_eq!(split("\"Zoë 文件.exe\" ñ"), ["Zoë 文件.exe", "ñ"]);
        assert_eq!(split("x \\"), ["x", "\\"]);
    }
}
