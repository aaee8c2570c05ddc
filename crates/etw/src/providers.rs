//! The ETW providers the collector reads, their GUIDs and names, and the properties of each
//! event it maps (names as the provider's manifest or MOF class spells them; checked against
//! the Windows 10 manifests, see `docs/windows-events.md`).

use crate::record::Guid;

/// The sources the collector maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Classic kernel "Process" events (NT kernel logger, MOF class `Process_V4`): start,
    /// end and rundown with the command line.
    KernelProcessClassic,
    /// Microsoft-Windows-Kernel-Process (thread start, for remote threads).
    KernelProcess,
    /// Microsoft-Windows-Kernel-File.
    KernelFile,
    /// Microsoft-Windows-Kernel-Network.
    KernelNetwork,
    /// Microsoft-Windows-DNS-Client.
    DnsClient,
    /// Microsoft-Windows-PowerShell.
    PowerShell,
    /// Microsoft-Windows-WMI-Activity.
    WmiActivity,
    /// Microsoft-Windows-NTLM.
    Ntlm,
    /// Microsoft-Windows-Security-Auditing (read from the Security log, not ETW; mapped here
    /// so that the Event Log half shares the network mapping of 5156).
    SecurityAuditing,
}

/// Every provider, in the order of the documentation table.
pub const ALL: [Provider; 9] = [
    Provider::KernelProcessClassic,
    Provider::KernelProcess,
    Provider::KernelFile,
    Provider::KernelNetwork,
    Provider::DnsClient,
    Provider::PowerShell,
    Provider::WmiActivity,
    Provider::Ntlm,
    Provider::SecurityAuditing,
];

impl Provider {
    /// The provider (or classic event class) GUID.
    pub fn guid(self) -> Guid {
        Guid(match self {
            Provider::KernelProcessClassic => 0x3D6FA8D0_FE05_11D0_9DDA_00C04FD7BA7C,
            Provider::KernelProcess => 0x22FB2CD6_0E7B_422B_A0C7_2FAD1FD0E716,
            Provider::KernelFile => 0xEDD08927_9CC4_4E65_B970_C2560FB5C289,
            Provider::KernelNetwork => 0x7DD42A49_5329_4832_8DFD_43D979153A88,
            Provider::DnsClient => 0x1C95126E_7EEA_49A9_A3FE_A378B03DDB4D,
            Provider::PowerShell => 0xA0128B9C_3827_44AE_A098_5256A14401F8,
            Provider::WmiActivity => 0x1418EF04_B0B4_4623_BF7E_D74AB47BBDAA,
            Provider::Ntlm => 0xAC43300D_5FCC_4800_8E99_1BD3F85F0320,
            Provider::SecurityAuditing => 0x54849625_5478_4994_A5BA_3E3B0328C30D,
        })
    }

    /// The provider for a GUID, if it is one the collector maps.
    pub fn from_guid(guid: Guid) -> Option<Provider> {
        ALL.into_iter().find(|p| p.guid() == guid)
    }

    /// The name written as `SourceName` in `action.properties` and, for events the OS
    /// names itself, as `event.provider`. The classic kernel class is `Kernel-Process`, as
    /// the product writes it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::KernelProcessClassic => "Kernel-Process",
            Provider::KernelProcess => "Microsoft-Windows-Kernel-Process",
            Provider::KernelFile => "Microsoft-Windows-Kernel-File",
            Provider::KernelNetwork => "Microsoft-Windows-Kernel-Network",
            Provider::DnsClient => "Microsoft-Windows-DNS-Client",
            Provider::PowerShell => "Microsoft-Windows-PowerShell",
            Provider::WmiActivity => "Microsoft-Windows-WMI-Activity",
            Provider::Ntlm => "Microsoft-Windows-NTLM",
            Provider::SecurityAuditing => "Microsoft-Windows-Security-Auditing",
        }
    }
}

/// Classic kernel Process opcodes.
pub mod opcode {
    /// Process start.
    pub const START: u8 = 1;
    /// Process end.
    pub const END: u8 = 2;
    /// Rundown of a process running when the session started.
    pub const DC_START: u8 = 3;
    /// Rundown at session end.
    pub const DC_END: u8 = 4;
}

/// Properties of the classic kernel Process events (`Process_V4_TypeGroup1`).
pub const PROCESS_CLASSIC: &[&str] = &[
    "UniqueProcessKey",
    "ProcessId",
    "ParentId",
    "SessionId",
    "ExitStatus",
    "DirectoryTableBase",
    "Flags",
    "UserSID",
    "ImageFileName",
    "CommandLine",
    "PackageFullName",
    "ApplicationId",
];

/// Properties of Microsoft-Windows-Kernel-Process 3 (`ThreadStart_V1`).
pub const THREAD_START: &[&str] = &[
    "ProcessID",
    "ThreadID",
    "StackBase",
    "StackLimit",
    "UserStackBase",
    "UserStackLimit",
    "StartAddr",
    "Win32StartAddr",
    "TebBase",
    "SubProcessTag",
];

/// Properties of Microsoft-Windows-Kernel-Process 1 (`ProcessStart`) the mapper uses: only
/// who created whom (the kernel Process events carry the rest).
pub const KP_PROCESS_START: &[&str] = &["ProcessID", "ParentProcessID"];

/// Properties of Kernel-File 12 `Create_V1` and 30 `CreateNewFile_V1`.
pub const FILE_CREATE: &[&str] = &[
    "Irp",
    "FileObject",
    "IssuingThreadId",
    "CreateOptions",
    "CreateAttributes",
    "ShareAccess",
    "FileName",
];

/// Properties of Kernel-File 26 `DeletePath_V1` and 27 `RenamePath_V1`.
pub const FILE_PATH_INFO: &[&str] = &[
    "Irp",
    "FileObject",
    "FileKey",
    "ExtraInformation",
    "IssuingThreadId",
    "InfoClass",
    "FilePath",
];

/// Properties of Kernel-File 19 `Rename_V1` (no path: the name comes from the Create of
/// the same file object).
pub const FILE_RENAME: &[&str] = &[
    "Irp",
    "FileObject",
    "FileKey",
    "ExtraInformation",
    "IssuingThreadId",
    "InfoClass",
];

/// Properties of Kernel-Network 12/15 (IPv4) and 28/31 (IPv6) connect and accept.
pub const TCP_CONNECTION: &[&str] = &[
    "PID",
    "size",
    "daddr",
    "saddr",
    "dport",
    "sport",
    "mss",
    "sackopt",
    "tsopt",
    "wsopt",
    "rcvwin",
    "rcvwinscale",
    "sndwinscale",
    "seqnum",
    "connid",
];

/// Properties of DNS-Client 3008 (query completed).
pub const DNS_COMPLETED: &[&str] = &[
    "QueryName",
    "QueryType",
    "QueryOptions",
    "QueryStatus",
    "QueryResults",
];

/// Properties of DNS-Client 3006 (query sent).
pub const DNS_SENT: &[&str] = &[
    "QueryName",
    "QueryType",
    "QueryOptions",
    "ServerList",
    "IsNetworkQuery",
    "NetworkQueryIndex",
    "InterfaceIndex",
    "IsAsyncQuery",
];

/// Properties of PowerShell 4104 (script block).
pub const PS_SCRIPT_BLOCK: &[&str] = &[
    "MessageNumber",
    "MessageTotal",
    "ScriptBlockText",
    "ScriptBlockId",
    "Path",
];

/// Properties of PowerShell 4103 (pipeline execution).
pub const PS_PIPELINE: &[&str] = &["ContextInfo", "UserData", "Payload"];

/// Properties of WMI-Activity 5857 (provider loaded).
pub const WMI_5857: &[&str] = &[
    "ProviderName",
    "Code",
    "HostProcess",
    "ProcessID",
    "ProviderPath",
];
/// Properties of WMI-Activity 5858 (operation error).
pub const WMI_5858: &[&str] = &[
    "Id",
    "ClientMachine",
    "User",
    "ClientProcessId",
    "Component",
    "Operation",
    "ResultCode",
    "PossibleCause",
];
/// Properties of WMI-Activity 5859 (temporary event consumer query).
pub const WMI_5859: &[&str] = &[
    "NamespaceName",
    "Query",
    "User",
    "processid",
    "providerName",
    "queryid",
    "PossibleCause",
];
/// Properties of WMI-Activity 5860 (temporary event consumer registered).
pub const WMI_5860: &[&str] = &[
    "NamespaceName",
    "Query",
    "User",
    "processid",
    "MachineName",
    "PossibleCause",
];
/// Properties of WMI-Activity 5861 (permanent event consumer binding).
pub const WMI_5861: &[&str] = &["Namespace", "ESS", "CONSUMER", "PossibleCause"];

/// Properties of NTLM 8001 / 4001 (outgoing NTLM to a server: audited / blocked).
pub const NTLM_OUTGOING: &[&str] = &[
    "TargetName",
    "UserName",
    "DomainName",
    "CallerPID",
    "ProcessName",
    "ClientLUID",
    "ClientUserName",
    "ClientDomainName",
    "MechanismOID",
];
/// Properties of NTLM 8002 / 4002 (incoming NTLM to this server).
pub const NTLM_INCOMING: &[&str] = &[
    "CallerPID",
    "ProcessName",
    "ClientLUID",
    "ClientUserName",
    "ClientDomainName",
    "MechanismOID",
];
/// Properties of NTLM 8003 / 4003 (domain account authenticated on this server).
pub const NTLM_DOMAIN: &[&str] = &[
    "UserName",
    "DomainName",
    "Workstation",
    "CallerPID",
    "ProcessName",
    "LogonType",
    "InProc",
    "MechanismOID",
];
/// Properties of NTLM 8004 (domain controller pass-through authentication). Not in the
/// Windows 10 client manifest (domain controllers only); names from Microsoft's NTLM
/// auditing documentation.
pub const NTLM_DC: &[&str] = &[
    "SChannelName",
    "UserName",
    "DomainName",
    "WorkstationName",
    "SChannelType",
];

/// The properties the binding reads for an event, or `None` for an event the mapper
/// ignores (so the binding skips decoding it).
pub fn properties(provider: Provider, id: u16, opcode: u8) -> Option<&'static [&'static str]> {
    Some(match (provider, id) {
        (Provider::KernelProcessClassic, _) => match opcode {
            opcode::START | opcode::END | opcode::DC_START => PROCESS_CLASSIC,
            _ => return None,
        },
        (Provider::KernelProcess, 3) => THREAD_START,
        (Provider::KernelProcess, 1) => KP_PROCESS_START,
        (Provider::KernelFile, 12 | 30) => FILE_CREATE,
        (Provider::KernelFile, 26 | 27) => FILE_PATH_INFO,
        (Provider::KernelFile, 19) => FILE_RENAME,
        (Provider::KernelNetwork, 12 | 15 | 28 | 31) => TCP_CONNECTION,
        (Provider::DnsClient, 3008) => DNS_COMPLETED,
        (Provider::DnsClient, 3006) => DNS_SENT,
        (Provider::PowerShell, 4104) => PS_SCRIPT_BLOCK,
        (Provider::PowerShell, 4103) => PS_PIPELINE,
        (Provider::WmiActivity, 5857) => WMI_5857,
        (Provider::WmiActivity, 5858) => WMI_5858,
        (Provider::WmiActivity, 5859) => WMI_5859,
        (Provider::WmiActivity, 5860) => WMI_5860,
        (Provider::WmiActivity, 5861) => WMI_5861,
        (Provider::Ntlm, 8001 | 4001) => NTLM_OUTGOING,
        (Provider::Ntlm, 8002 | 4002) => NTLM_INCOMING,
        (Provider::Ntlm, 8003 | 4003) => NTLM_DOMAIN,
        (Provider::Ntlm, 8004) => NTLM_DC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_and_are_distinct() {
        for p in ALL {
            assert_eq!(Provider::from_guid(p.guid()), Some(p));
            let text = p.guid().to_string();
            assert_eq!(text.parse::<Guid>().unwrap(), p.guid());
        }
        assert_eq!(
            Provider::KernelProcessClassic.guid().to_string(),
            "3D6FA8D0-FE05-11D0-9DDA-00C04FD7BA7C"
        );
        assert_eq!(Provider::from_guid(Guid(1)), None);
    }

    #[test]
    fn only_mapped_events_are_decoded() {
        assert!(properties(Provider::KernelFile, 12, 0).is_some());
        assert!(properties(Provider::KernelFile, 15, 0).is_none());
        assert!(properties(Provider::KernelProcessClassic, 0, opcode::DC_END).is_none());
        assert!(properties(Provider::DnsClient, 3020, 0).is_none());
    }
}
