/* Stand-in for the Apple SDK header of the same name, so that `cargo check` for the
 * macOS targets can run the C build scripts (ring) on a Linux CI machine without an SDK.
 * Only used by .ci/run's cross checks; the objects are never linked into anything. */
#ifndef ENDPOINT_AGENT_TARGET_CONDITIONALS_H
#define ENDPOINT_AGENT_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif
