/*
 * shipper_int.h — the reader of the shipper's resume state
 * (.sqlenvfs/replica-shipped, its layout at the top of shipper.c) and its
 * writer's formatting, for the code that must read it besides the shipper: its fuzz target
 * (tests/fuzz/fuzz_shipper_state.c); and the taking of the removal queue, for
 * its unit test. Private to sqlenvfs.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What a state file says was shipped to one replica. */
typedef struct {
  GHashTable *shipped;   /* object key -> guint64 * size shipped            */
  GHashTable *parts_end; /* segment key -> guint64 * end of the parts shipped
                            contiguously from 0 (its "<key>.part-A-B" objects) */
  char *intent;          /* the part being uploaded when it was written, or NULL */
} SqlenvfsShipperState;

/* Read the state of the replica @url from the file @path into @st (both
 * tables always created, to be freed with sqlenvfs_shipper_state_clear()).
 * A missing file gives an empty state and *@missing TRUE; a file whose
 * checksum does not match, or that is of another url, an empty state and
 * *@missing TRUE (logged: what the replica holds is then read again);
 * a file that cannot be read, an empty state (logged). */
void sqlenvfs_shipper_state_load(const char *path, const char *url, SqlenvfsShipperState *st,
                                 gboolean *missing);

/* The state file's bytes for @url: its header, the url, @intent when not
 * NULL, one "<size> <key>" line per object of @shipped (key -> guint64 *
 * size) in key order, and "end <crc32>". */
GString *sqlenvfs_shipper_state_format(const char *url, GHashTable *shipped, const char *intent);

/* Free what @st holds; @st may be cleared already. */
void sqlenvfs_shipper_state_clear(SqlenvfsShipperState *st);

/* Take the removal queue @path for sending: rename it to @taking under the
 * exclusive lock prune's appends hold, so that no line is appended to it
 * once it is taken. TRUE when there was none. */
gboolean sqlenvfs_shipper_queue_take(const char *path, const char *taking, GError **error);

/* Append @text (@len bytes) to the queue or pending file @path (created
 * 0600 if need be) and make it durable, under the lock taking holds, to
 * the file that is at @path once locked. */
gboolean sqlenvfs_shipper_queue_append(const char *path, const char *text, gsize len,
                                       GError **error);

/* Tests: called by an append to the removal queue between its open and its
 * lock (NULL otherwise). */
extern void (*sqlenvfs_shipper_queue_hook)(const char *path);

G_END_DECLS
