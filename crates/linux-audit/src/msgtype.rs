//! Audit message type numbers and their names (`linux/audit.h` and `libaudit.h`).
//!
//! Record names are what text logs carry (`type=SYSCALL`) while netlink carries the number;
//! both sides of the parser meet on the number.

/// `AUDIT_GET`: get status.
pub const AUDIT_GET: u16 = 1000;
/// `AUDIT_SET`: set status.
pub const AUDIT_SET: u16 = 1001;
/// `AUDIT_ADD_RULE`: add a syscall filtering rule.
pub const AUDIT_ADD_RULE: u16 = 1011;
/// `AUDIT_DEL_RULE`: delete a syscall filtering rule.
pub const AUDIT_DEL_RULE: u16 = 1012;
/// `AUDIT_LIST_RULES`: list syscall filtering rules.
pub const AUDIT_LIST_RULES: u16 = 1013;
/// `AUDIT_SYSCALL`: syscall event.
pub const AUDIT_SYSCALL: u16 = 1300;
/// `AUDIT_PATH`: filename path information.
pub const AUDIT_PATH: u16 = 1302;
/// `AUDIT_SOCKADDR`: sockaddr copied as syscall argument.
pub const AUDIT_SOCKADDR: u16 = 1306;
/// `AUDIT_CWD`: current working directory.
pub const AUDIT_CWD: u16 = 1307;
/// `AUDIT_EXECVE`: execve arguments.
pub const AUDIT_EXECVE: u16 = 1309;
/// `AUDIT_EOE`: end of multi-record event.
pub const AUDIT_EOE: u16 = 1320;
/// `AUDIT_LOGIN`: a process set its login uid (`/proc/self/loginuid`).
pub const AUDIT_LOGIN: u16 = 1006;
/// `AUDIT_SERVICE_START`: a service manager started a unit.
pub const AUDIT_SERVICE_START: u16 = 1130;
/// `AUDIT_SERVICE_STOP`: a service manager stopped a unit.
pub const AUDIT_SERVICE_STOP: u16 = 1131;
/// `AUDIT_NETFILTER_CFG`: a firewall table or rule changed.
pub const AUDIT_NETFILTER_CFG: u16 = 1325;
/// `AUDIT_ANOM_PROMISCUOUS`: a network device entered or left promiscuous mode.
pub const AUDIT_ANOM_PROMISCUOUS: u16 = 1700;
/// `AUDIT_ANOM_ABEND`: a process ended on a signal that dumps core.
pub const AUDIT_ANOM_ABEND: u16 = 1701;
/// `AUDIT_PROCTITLE`: the process title (command line) of the process.
pub const AUDIT_PROCTITLE: u16 = 1327;

/// Every known type, sorted by number.
static TYPES: &[(u16, &str)] = &[
    (1000, "GET"),
    (1001, "SET"),
    (1002, "LIST"),
    (1003, "ADD"),
    (1004, "DEL"),
    (1005, "USER"),
    (1006, "LOGIN"),
    (1007, "WATCH_INS"),
    (1008, "WATCH_REM"),
    (1009, "WATCH_LIST"),
    (1010, "SIGNAL_INFO"),
    (1011, "ADD_RULE"),
    (1012, "DEL_RULE"),
    (1013, "LIST_RULES"),
    (1014, "TRIM"),
    (1015, "MAKE_EQUIV"),
    (1016, "TTY_GET"),
    (1017, "TTY_SET"),
    (1018, "SET_FEATURE"),
    (1019, "GET_FEATURE"),
    (1100, "USER_AUTH"),
    (1101, "USER_ACCT"),
    (1102, "USER_MGMT"),
    (1103, "CRED_ACQ"),
    (1104, "CRED_DISP"),
    (1105, "USER_START"),
    (1106, "USER_END"),
    (1107, "USER_AVC"),
    (1108, "USER_CHAUTHTOK"),
    (1109, "USER_ERR"),
    (1110, "CRED_REFR"),
    (1111, "USYS_CONFIG"),
    (1112, "USER_LOGIN"),
    (1113, "USER_LOGOUT"),
    (1114, "ADD_USER"),
    (1115, "DEL_USER"),
    (1116, "ADD_GROUP"),
    (1117, "DEL_GROUP"),
    (1118, "DAC_CHECK"),
    (1119, "CHGRP_ID"),
    (1120, "TEST"),
    (1121, "TRUSTED_APP"),
    (1122, "USER_SELINUX_ERR"),
    (1123, "USER_CMD"),
    (1124, "USER_TTY"),
    (1125, "CHUSER_ID"),
    (1126, "GRP_AUTH"),
    (1127, "SYSTEM_BOOT"),
    (1128, "SYSTEM_SHUTDOWN"),
    (1129, "SYSTEM_RUNLEVEL"),
    (1130, "SERVICE_START"),
    (1131, "SERVICE_STOP"),
    (1132, "GRP_MGMT"),
    (1133, "GRP_CHAUTHTOK"),
    (1134, "MAC_CHECK"),
    (1135, "ACCT_LOCK"),
    (1136, "ACCT_UNLOCK"),
    (1137, "USER_DEVICE"),
    (1138, "SOFTWARE_UPDATE"),
    (1200, "DAEMON_START"),
    (1201, "DAEMON_END"),
    (1202, "DAEMON_ABORT"),
    (1203, "DAEMON_CONFIG"),
    (1204, "DAEMON_RECONFIG"),
    (1205, "DAEMON_ROTATE"),
    (1206, "DAEMON_RESUME"),
    (1207, "DAEMON_ACCEPT"),
    (1208, "DAEMON_CLOSE"),
    (1209, "DAEMON_ERR"),
    (1300, "SYSCALL"),
    (1301, "FS_WATCH"),
    (1302, "PATH"),
    (1303, "IPC"),
    (1304, "SOCKETCALL"),
    (1305, "CONFIG_CHANGE"),
    (1306, "SOCKADDR"),
    (1307, "CWD"),
    (1308, "FS_INODE"),
    (1309, "EXECVE"),
    (1311, "IPC_SET_PERM"),
    (1312, "MQ_OPEN"),
    (1313, "MQ_SENDRECV"),
    (1314, "MQ_NOTIFY"),
    (1315, "MQ_GETSETATTR"),
    (1316, "KERNEL_OTHER"),
    (1317, "FD_PAIR"),
    (1318, "OBJ_PID"),
    (1319, "TTY"),
    (1320, "EOE"),
    (1321, "BPRM_FCAPS"),
    (1322, "CAPSET"),
    (1323, "MMAP"),
    (1324, "NETFILTER_PKT"),
    (1325, "NETFILTER_CFG"),
    (1326, "SECCOMP"),
    (1327, "PROCTITLE"),
    (1328, "FEATURE_CHANGE"),
    (1329, "REPLACE"),
    (1330, "KERN_MODULE"),
    (1331, "FANOTIFY"),
    (1332, "TIME_INJOFFSET"),
    (1333, "TIME_ADJNTPVAL"),
    (1334, "BPF"),
    (1335, "EVENT_LISTENER"),
    (1336, "URINGOP"),
    (1337, "OPENAT2"),
    (1338, "DM_CTRL"),
    (1339, "DM_EVENT"),
    (1400, "AVC"),
    (1401, "SELINUX_ERR"),
    (1402, "AVC_PATH"),
    (1403, "MAC_POLICY_LOAD"),
    (1404, "MAC_STATUS"),
    (1405, "MAC_CONFIG_CHANGE"),
    (1406, "MAC_UNLBL_ALLOW"),
    (1407, "MAC_CIPSOV4_ADD"),
    (1408, "MAC_CIPSOV4_DEL"),
    (1409, "MAC_MAP_ADD"),
    (1410, "MAC_MAP_DEL"),
    (1411, "MAC_IPSEC_ADDSA"),
    (1412, "MAC_IPSEC_DELSA"),
    (1413, "MAC_IPSEC_ADDSPD"),
    (1414, "MAC_IPSEC_DELSPD"),
    (1415, "MAC_IPSEC_EVENT"),
    (1416, "MAC_UNLBL_STCADD"),
    (1417, "MAC_UNLBL_STCDEL"),
    (1418, "MAC_CALIPSO_ADD"),
    (1419, "MAC_CALIPSO_DEL"),
    (1420, "MAC_TASK_CONTEXTS"),
    (1421, "MAC_OBJ_CONTEXTS"),
    (1700, "ANOM_PROMISCUOUS"),
    (1701, "ANOM_ABEND"),
    (1702, "ANOM_LINK"),
    (1703, "ANOM_CREAT"),
    (1800, "INTEGRITY_DATA"),
    (1801, "INTEGRITY_METADATA"),
    (1802, "INTEGRITY_STATUS"),
    (1803, "INTEGRITY_HASH"),
    (1804, "INTEGRITY_PCR"),
    (1805, "INTEGRITY_RULE"),
    (1806, "INTEGRITY_EVM_XATTR"),
    (1807, "INTEGRITY_POLICY_RULE"),
    (2000, "KERNEL"),
    (2100, "ANOM_LOGIN_FAILURES"),
    (2101, "ANOM_LOGIN_TIME"),
    (2102, "ANOM_LOGIN_SESSIONS"),
    (2103, "ANOM_LOGIN_ACCT"),
    (2104, "ANOM_LOGIN_LOCATION"),
    (2105, "ANOM_MAX_DAC"),
    (2106, "ANOM_MAX_MAC"),
    (2107, "ANOM_AMTU_FAIL"),
    (2108, "ANOM_RBAC_FAIL"),
    (2109, "ANOM_RBAC_INTEGRITY_FAIL"),
    (2110, "ANOM_CRYPTO_FAIL"),
    (2111, "ANOM_ACCESS_FS"),
    (2112, "ANOM_EXEC"),
    (2113, "ANOM_MK_EXEC"),
    (2114, "ANOM_ADD_ACCT"),
    (2115, "ANOM_DEL_ACCT"),
    (2116, "ANOM_MOD_ACCT"),
    (2117, "ANOM_ROOT_TRANS"),
    (2118, "ANOM_LOGIN_SERVICE"),
    (2119, "ANOM_LOGIN_ROOT"),
    (2120, "ANOM_ORIGIN_FAILURES"),
    (2121, "ANOM_SESSION"),
    (2200, "RESP_ANOMALY"),
    (2201, "RESP_ALERT"),
    (2202, "RESP_KILL_PROC"),
    (2203, "RESP_TERM_ACCESS"),
    (2204, "RESP_ACCT_REMOTE"),
    (2205, "RESP_ACCT_LOCK_TIMED"),
    (2206, "RESP_ACCT_UNLOCK_TIMED"),
    (2207, "RESP_ACCT_LOCK"),
    (2208, "RESP_TERM_LOCK"),
    (2209, "RESP_SEBOOL"),
    (2210, "RESP_EXEC"),
    (2211, "RESP_SINGLE"),
    (2212, "RESP_HALT"),
    (2213, "RESP_ORIGIN_BLOCK"),
    (2214, "RESP_ORIGIN_BLOCK_TIMED"),
    (2300, "USER_ROLE_CHANGE"),
    (2301, "ROLE_ASSIGN"),
    (2302, "ROLE_REMOVE"),
    (2303, "LABEL_OVERRIDE"),
    (2304, "LABEL_LEVEL_CHANGE"),
    (2305, "USER_LABELED_EXPORT"),
    (2306, "USER_UNLABELED_EXPORT"),
    (2307, "DEV_ALLOC"),
    (2308, "DEV_DEALLOC"),
    (2309, "FS_RELABEL"),
    (2310, "USER_MAC_POLICY_LOAD"),
    (2311, "ROLE_MODIFY"),
    (2312, "USER_MAC_CONFIG_CHANGE"),
    (2313, "USER_MAC_STATUS"),
    (2400, "CRYPTO_TEST_USER"),
    (2401, "CRYPTO_PARAM_CHANGE_USER"),
    (2402, "CRYPTO_LOGIN"),
    (2403, "CRYPTO_LOGOUT"),
    (2404, "CRYPTO_KEY_USER"),
    (2405, "CRYPTO_FAILURE_USER"),
    (2406, "CRYPTO_REPLAY_USER"),
    (2407, "CRYPTO_SESSION"),
    (2408, "CRYPTO_IKE_SA"),
    (2409, "CRYPTO_IPSEC_SA"),
    (2500, "VIRT_CONTROL"),
    (2501, "VIRT_RESOURCE"),
    (2502, "VIRT_MACHINE_ID"),
    (2503, "VIRT_INTEGRITY_CHECK"),
    (2504, "VIRT_CREATE"),
    (2505, "VIRT_DESTROY"),
    (2506, "VIRT_MIGRATE_IN"),
    (2507, "VIRT_MIGRATE_OUT"),
];

/// The name of a message type (`1300` → `"SYSCALL"`), if known.
pub fn type_name(t: u16) -> Option<&'static str> {
    TYPES
        .binary_search_by_key(&t, |&(n, _)| n)
        .ok()
        .map(|i| TYPES[i].1)
}

/// The number of a message type name as text logs write it: `SYSCALL`, or `UNKNOWN[1329]`
/// for types the writer did not know.
pub fn type_number(name: &str) -> Option<u16> {
    if let Some(n) = name
        .strip_prefix("UNKNOWN[")
        .and_then(|r| r.strip_suffix(']'))
    {
        return n.parse().ok();
    }
    TYPES.iter().find(|&&(_, s)| s == name).map(|&(n, _)| n)
}

/// Whether records of this type form a whole event by themselves, so reassembly need not
/// wait for an `EOE`: user-space messages (1100-1299, 2100-2999) are sent one per event.
pub fn is_standalone(t: u16) -> bool {
    (1100..=1299).contains(&t) || (2100..=2999).contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_round_trips() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
        for &(n, s) in TYPES {
            assert_eq!(type_name(n), Some(s));
            assert_eq!(type_number(s), Some(n));
        }
        assert_eq!(type_number("UNKNOWN[1329]"), Some(1329));
        // Spot checks against linux/audit.h.
        assert_eq!(type_number("EOE"), Some(AUDIT_EOE));
        assert_eq!(AUDIT_EOE, 1320);
        assert_eq!(type_name(1321), Some("BPRM_FCAPS"));
        assert_eq!(type_name(1327), Some("PROCTITLE"));
        assert_eq!(type_name(1339), Some("DM_EVENT"));
        assert_eq!(type_name(9999), None);
        assert_eq!(type_number("NOPE"), None);
    }
}
