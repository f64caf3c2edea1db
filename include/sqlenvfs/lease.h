/*
 * lease.h — one writer per replica: a lease object in the replica, taken
 * and renewed with conditional writes, so that two roots pointed at the
 * same prefix never ship into it at once.
 *
 * The object is `<prefix>/lease` (SQLENVFS_LEASE_KEY), a small key file:
 *
 *   [lease]
 *   host=<host name>          who holds it: host, root directory, pid
 *   root=<root directory>
 *   pid=<process id>
 *   token=<random UUID>       this holder's identity, new at each acquire
 *   acquired=<unix µs>        when this holder took it
 *   expires=<unix µs>         the holder's clock; 0 once released
 *
 * Protocol (every write is a conditional PUT, see s3.h):
 *
 *          acquire: PUT If-None-Match: *            --> held (ETag E1)
 *              | 412: GET the lease (ETag E0)
 *              |   token is ours                    --> held (a retried PUT
 *              |                                        had succeeded)
 *              |   expires > now                    --> refused: BUSY, naming
 *              |                                        the holder
 *              |   expired or released: PUT If-Match: E0 --> held (taken over)
 *              |                          412: read again (bounded)
 *          renew:   PUT If-Match: E (new expiry)    --> held (ETag E')
 *              | 412 or 404: GET; token is ours     --> held
 *              |             else                   --> lost (for good)
 *          release: PUT If-Match: E with expires=0  --> free for anyone
 *
 * Invariants:
 *   (1) at most one holder's write succeeds against one ETag, so two
 *       acquirers cannot both hold the lease;
 *   (2) a holder that learns it lost the lease (renew fails with 412 and
 *       another token is there) is marked lost and never writes again;
 *   (3) a lease is taken over only when its expiry, read by the taker's
 *       clock, has passed: the ttl must exceed the clocks' difference plus
 *       the holder's renewal period (renew at ttl/2 or more often).
 *
 * A holder must stop writing when sqlenvfs_lease_is_valid() turns false
 * (lost, or not renewed before its expiry).
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/s3.h"

G_BEGIN_DECLS

#define SQLENVFS_LEASE_KEY "lease"

typedef struct _SqlenvfsLease SqlenvfsLease;

/* Who holds (or held) a lease, as read from the object. */
typedef struct {
  char *host;
  char *root;
  gint64 pid;
  char *token;
  gint64 acquired_us;
  gint64 expires_us;
  char *root_id; /* the root's id (shipper.c), or NULL (not written by all) */
} SqlenvfsLeaseHolder;

void sqlenvfs_lease_holder_free(SqlenvfsLeaseHolder *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsLeaseHolder, sqlenvfs_lease_holder_free)

/* Take the lease of the replica @s3 points at, for @ttl_s seconds, as the
 * writer of root directory @root. @s3 is borrowed and must outlive the
 * lease. Fails with SQLENVFS_ERROR_BUSY naming the holder (host, root, pid,
 * until when) when another holder's lease has not expired, with
 * SQLENVFS_ERROR_INTEGRITY when the lease object cannot be read as one, or
 * with the S3 error. NULL on failure. */
SqlenvfsLease *sqlenvfs_lease_acquire(SqlenvfsS3 *s3, const char *root, gint64 ttl_s,
                                      GError **error);
/* The same, for the root whose id is @root_id (written in the lease). A
 * lease not expired is taken over all the same when its holder was a
 * process of the same root (host, directory and id) on this host that is
 * gone: an archiver killed without releasing it, whose successor (the
 * root's lock lets one run at a time) need not wait for the expiry. */
SqlenvfsLease *sqlenvfs_lease_acquire_as(SqlenvfsS3 *s3, const char *root, const char *root_id,
                                         gint64 ttl_s, GError **error);

/* Extend the lease to now + ttl. When another holder has it (this one
 * expired and was taken over, or the object was removed), the lease is
 * marked lost for good and SQLENVFS_ERROR_BUSY names the new holder. Any
 * other failure (network, server) leaves the lease as it was: try again
 * before it expires. */
gboolean sqlenvfs_lease_renew(SqlenvfsLease *lease, GError **error);

/* Give the lease up (it is rewritten as expired, conditionally on still
 * being ours). A lost lease is not touched. */
gboolean sqlenvfs_lease_release(SqlenvfsLease *lease, GError **error);

/* TRUE while the lease is held: not lost, and its expiry not yet passed by
 * sqlenvfs_clock_now(). */
gboolean sqlenvfs_lease_is_valid(SqlenvfsLease *lease);
gboolean sqlenvfs_lease_is_lost(SqlenvfsLease *lease);
const SqlenvfsLeaseHolder *sqlenvfs_lease_holder(SqlenvfsLease *lease);

/* Free the handle (does not release the lease). */
void sqlenvfs_lease_free(SqlenvfsLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsLease, sqlenvfs_lease_free)

/* Who holds the lease now: NULL with SQLENVFS_ERROR_NOT_FOUND when there is
 * no lease object, or another error. */
SqlenvfsLeaseHolder *sqlenvfs_lease_read(SqlenvfsS3 *s3, char **etag_out, GError **error);

G_END_DECLS
