/*
 * testhooks.h — every hook through which tests steer the product, in one
 * place. Each is an environment variable, read by one accessor here (at
 * each call, so that a test may set and unset it); nothing else in the code
 * reads an environment variable for testing. Unset, empty or not a number
 * means the hook is off (0).
 *
 *   SQLENVFS_TEST_STORE_DELAY_MS   a backup or snapshot (store.h) sleeps this
 *                                  long after each 4 MiB copied and before
 *                                  renaming its entry into place, so that a
 *                                  test can interrupt or overlap a run
 *   SQLENVFS_TEST_PITR_DELAY_MS    a pitr/ rebuild in the mount sleeps this
 *                                  long before renaming its file into place,
 *                                  so that a test can have readers overlap it
 *   SQLENVFS_TEST_PITR_IDLE_MEMORY  the memory the mount lets idle pitr/
 *                                  states keep (bytes, instead of 16 MiB), so
 *                                  that a test of small states sees them
 *                                  dropped as a large database's would be
 *   SQLENVFS_TEST_PITR_CHECK_MS    the mount compares a database's timeline
 *                                  with the archive at most this often
 *                                  (instead of every 250 ms) unless a lookup
 *                                  needs it now, so that a test sees what a
 *                                  lookup finds in a view just refreshed
 *   SQLENVFS_TEST_RECOVER_DELAY_MS  recover (recover.h) sleeps this long
 *                                  after copying the source's database file
 *                                  and before copying its -wal and -journal,
 *                                  so that a test can write the source while
 *                                  it is being copied
 *   SQLENVFS_TEST_INIT_DELAY_MS    init --force (env.h) sleeps this long after
 *                                  each file it moves aside, so that a test
 *                                  can kill it between two moves
 *   SQLENVFS_TEST_ARCHIVE_OPEN_DELAY_MS  a reader of the archive sleeps this
 *                                  long between reading the alive file and
 *                                  listing the segments (when it opens the
 *                                  archive and when it refreshes), so that a
 *                                  test can
 *                                  have the archiver seal and start segments
 *                                  in between
 *   SQLENVFS_TEST_REMOTE_RANGE_BYTES  a remote read (remote.h) fetches objects
 *                                  in ranged GETs of this many bytes (at least
 *                                  65536) instead of 8 MiB, so that small
 *                                  test objects take the ranged path
 *
 * They only make things slower, never different: a hook left set in
 * production delays work and changes no result.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SQLENVFS_TEST_STORE_DELAY_ENV "SQLENVFS_TEST_STORE_DELAY_MS"
#define SQLENVFS_TEST_PITR_DELAY_ENV "SQLENVFS_TEST_PITR_DELAY_MS"

/* Milliseconds of SQLENVFS_TEST_STORE_DELAY_MS, or 0. */
guint sqlenvfs_testhook_store_delay_ms(void);

/* Milliseconds of SQLENVFS_TEST_PITR_DELAY_MS, or 0. */
guint sqlenvfs_testhook_pitr_delay_ms(void);

#define SQLENVFS_TEST_ARCHIVE_OPEN_DELAY_ENV "SQLENVFS_TEST_ARCHIVE_OPEN_DELAY_MS"
/* Milliseconds of SQLENVFS_TEST_ARCHIVE_OPEN_DELAY_MS, or 0. */
guint sqlenvfs_testhook_archive_open_delay_ms(void);

#define SQLENVFS_TEST_PITR_IDLE_MEMORY_ENV "SQLENVFS_TEST_PITR_IDLE_MEMORY"

/* Bytes of SQLENVFS_TEST_PITR_IDLE_MEMORY, or 0. */
guint sqlenvfs_testhook_pitr_idle_memory(void);

#define SQLENVFS_TEST_DIFF_DOC_MAX_ENV "SQLENVFS_TEST_DIFF_DOC_MAX"

/* Bytes of SQLENVFS_TEST_DIFF_DOC_MAX (the largest diff/ document the mount
 * makes, for tests of the refusal), or 0. */
guint sqlenvfs_testhook_diff_doc_max(void);

#define SQLENVFS_TEST_PITR_CHECK_ENV "SQLENVFS_TEST_PITR_CHECK_MS"

/* Milliseconds of SQLENVFS_TEST_PITR_CHECK_MS, or 0. */
guint sqlenvfs_testhook_pitr_check_ms(void);

#define SQLENVFS_TEST_RECOVER_DELAY_ENV "SQLENVFS_TEST_RECOVER_DELAY_MS"

/* Milliseconds of SQLENVFS_TEST_RECOVER_DELAY_MS, or 0. */
guint sqlenvfs_testhook_recover_delay_ms(void);

#define SQLENVFS_TEST_INIT_DELAY_ENV "SQLENVFS_TEST_INIT_DELAY_MS"

/* Milliseconds of SQLENVFS_TEST_INIT_DELAY_MS, or 0. */
guint sqlenvfs_testhook_init_delay_ms(void);

#define SQLENVFS_TEST_REMOTE_RANGE_ENV "SQLENVFS_TEST_REMOTE_RANGE_BYTES"

/* Bytes of SQLENVFS_TEST_REMOTE_RANGE_BYTES, or 0. */
guint sqlenvfs_testhook_remote_range_bytes(void);

G_END_DECLS
