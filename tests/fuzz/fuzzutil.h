/*
 * fuzzutil.h — what every libFuzzer target shares: a private temporary
 * directory for the files a target writes, writing input bytes to a file,
 * and a log writer that drops diagnostics and aborts on a critical (a failed
 * g_return_if_fail is a programming error, which is what fuzzing looks for).
 *
 * A target writes only inside fuzz_tmpdir(); the directory is created once
 * per process (mode 0700, under $TMPDIR) and removed at exit.
 */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Route GLib's log through the fuzz writer and make criticals fatal. */
void fuzz_init_logging(void);

/* The private directory of this process (created on first use). */
const char *fuzz_tmpdir(void);

/* Write exactly @len bytes to @path (created 0600 or truncated); aborts on
 * failure: the target cannot test anything without its input file. */
void fuzz_write_file(const char *path, const void *data, gsize len);

/* Remove @path and everything under it; aborts on failure. */
void fuzz_rm_rf(const char *path);

/* A NUL-terminated copy of @data (newly allocated). */
char *fuzz_strndup(const uint8_t *data, size_t size);

G_END_DECLS
