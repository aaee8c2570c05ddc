/* Minimal stand-in for the macOS SDK's <stdlib.h>, reached through clang's <mm_malloc.h>
 * when ring's x86_64 C code is compiled for `cargo check --target x86_64-apple-darwin`
 * on Linux. Declarations only; nothing compiled with it is ever linked. */
#ifndef ENDPOINT_AGENT_STDLIB_H
#define ENDPOINT_AGENT_STDLIB_H
#include <stddef.h>
void *malloc(size_t size);
void free(void *ptr);
int posix_memalign(void **memptr, size_t alignment, size_t size);
void abort(void);
#endif
