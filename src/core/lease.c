/*
 * lease.c — one writer per replica (see lease.h for the object, the
 * protocol and its invariants).
 */
#include "sqlenvfs/lease.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

/* How many times acquire re-reads after losing a race before giving up. */
#define ACQUIRE_ROUNDS 4

struct _SqlenvfsLease {
  SqlenvfsS3 *s3;          /* borrowed */
  SqlenvfsLeaseHolder me;  /* what the object says while we hold it */
  gint64 ttl_us;
  char *etag;              /* of our last write */
  gboolean is_lost;
  gboolean is_released;
};

void
sqlenvfs_lease_holder_free(SqlenvfsLeaseHolder *h)
{
  if (h == NULL)
    return;
  g_free(h->host);
  g_free(h->root);
  g_free(h->token);
  g_free(h->root_id);
  g_free(h);
}

static char *
render(const SqlenvfsLeaseHolder *h, gsize *len)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_key_file_set_string(kf, "lease", "host", h->host);
  g_key_file_set_string(kf, "lease", "root", h->root);
  g_key_file_set_int64(kf, "lease", "pid", h->pid);
  g_key_file_set_string(kf, "lease", "token", h->token);
  g_key_file_set_int64(kf, "lease", "acquired", h->acquired_us);
  g_key_file_set_int64(kf, "lease", "expires", h->expires_us);
  if (h->root_id != NULL)
    g_key_file_set_string(kf, "lease", "root-id", h->root_id);
  return g_key_file_to_data(kf, len, NULL);
}

static SqlenvfsLeaseHolder *
parse(GBytes *bytes, const char *what, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(SqlenvfsLeaseHolder) h = g_new0(SqlenvfsLeaseHolder, 1);
  g_autoptr(GError) local = NULL;
  gsize len;
  const char *data = g_bytes_get_data(bytes, &len);
  gboolean parsed;

  parsed = len > 0 && g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &local);
  if (!parsed || !(h->host = g_key_file_get_string(kf, "lease", "host", &local)) ||
      !(h->root = g_key_file_get_string(kf, "lease", "root", &local)) ||
      !(h->token = g_key_file_get_string(kf, "lease", "token", &local)) ||
      ((h->pid = g_key_file_get_int64(kf, "lease", "pid", &local)), local != NULL) ||
      ((h->acquired_us = g_key_file_get_int64(kf, "lease", "acquired", &local)), local != NULL) ||
      ((h->expires_us = g_key_file_get_int64(kf, "lease", "expires", &local)), local != NULL)) {
    /* GKeyFile's messages quote the object's bytes, which may be binary:
     * what is wrong is said, never shown. */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read lease %s: not a lease (%s); if no writer uses this replica, delete the "
                "object and start again",
                what, len == 0 ? "empty"
                : !parsed ? "not the key file a lease is"
                          : "a field of [lease] (host, root, token, pid, acquired, expires) is "
                            "missing or not valid");
    return NULL;
  }
  h->root_id = g_key_file_get_string(kf, "lease", "root-id", NULL); /* optional */
  return g_steal_pointer(&h);
}

SqlenvfsLeaseHolder *
sqlenvfs_lease_read(SqlenvfsS3 *s3, char **etag_out, GError **error)
{
  g_autofree char *what = sqlenvfs_s3_describe(s3, SQLENVFS_LEASE_KEY);
  g_autofree char *etag = NULL;
  g_autoptr(GBytes) b = sqlenvfs_s3_get(s3, SQLENVFS_LEASE_KEY, 0, -1, &etag, error);
  SqlenvfsLeaseHolder *h;

  if (b == NULL)
    return NULL;
  h = parse(b, what, error);
  if (h && etag_out)
    *etag_out = g_steal_pointer(&etag);
  return h;
}

static char *
format_time(gint64 us)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(us / G_USEC_PER_SEC);
  return dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("?");
}

static void
set_busy(GError **error, const char *verb, const char *what, const SqlenvfsLeaseHolder *h)
{
  g_autofree char *until = format_time(h->expires_us);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
              "%s lease %s: held by host %s, root %s, pid %" G_GINT64_FORMAT " until %s "
              "(one writer per replica: stop that writer, or use another prefix)",
              verb, what, h->host, h->root, h->pid, until);
}

/* Write our holder record with expiry now + ttl under @cond. */
static gboolean
write_me(SqlenvfsLease *l, SqlenvfsS3PutCondition cond, const char *etag, GError **error)
{
  gsize len;
  g_autofree char *body = render(&l->me, &len);
  g_autofree char *new_etag = NULL;

  if (!sqlenvfs_s3_put(l->s3, SQLENVFS_LEASE_KEY, body, len, cond, etag, &new_etag, error))
    return FALSE;
  g_free(l->etag);
  l->etag = g_steal_pointer(&new_etag);
  return TRUE;
}

/* Whether @h was written by another process of this root (host, directory
 * and id: two containers may share a host name and a path): an archiver
 * killed without releasing its lease. Only an archiver takes a lease with
 * a root id, and it holds the root's archiver lock, which lets one run per
 * root: the one that wrote @h is gone, whatever its pid shows now (a
 * zombie its parent has not reaped, or a pid used again by another
 * program), and its successor takes the lease at once rather than wait
 * for it to expire. */
static gboolean
holder_is_dead_predecessor(const SqlenvfsLeaseHolder *h, const SqlenvfsLeaseHolder *me)
{
  return h->root_id != NULL && me->root_id != NULL && strcmp(h->root_id, me->root_id) == 0 &&
         strcmp(h->host, me->host) == 0 && strcmp(h->root, me->root) == 0 && h->pid > 0 &&
         h->pid != me->pid;
}

SqlenvfsLease *
sqlenvfs_lease_acquire(SqlenvfsS3 *s3, const char *root, gint64 ttl_s, GError **error)
{
  return sqlenvfs_lease_acquire_as(s3, root, NULL, ttl_s, error);
}

SqlenvfsLease *
sqlenvfs_lease_acquire_as(SqlenvfsS3 *s3, const char *root, const char *root_id, gint64 ttl_s,
                          GError **error)
{
  g_autofree char *what = sqlenvfs_s3_describe(s3, SQLENVFS_LEASE_KEY);
  SqlenvfsLease *l;

  g_return_val_if_fail(s3 != NULL && root != NULL && ttl_s > 0, NULL);
  l = g_new0(SqlenvfsLease, 1);
  l->s3 = s3;
  l->ttl_us = ttl_s * G_USEC_PER_SEC;
  l->me.host = g_strdup(g_get_host_name());
  l->me.root = g_strdup(root);
  l->me.pid = getpid();
  l->me.token = g_uuid_string_random();
  l->me.root_id = g_strdup(root_id);

  for (int round = 0; round < ACQUIRE_ROUNDS; round++) {
    g_autoptr(GError) local = NULL;
    g_autoptr(SqlenvfsLeaseHolder) h = NULL;
    g_autofree char *etag = NULL;
    gint64 now = sqlenvfs_clock_now();

    l->me.acquired_us = now;
    l->me.expires_us = now + l->ttl_us;
    if (write_me(l, SQLENVFS_S3_PUT_IF_ABSENT, NULL, &local))
      return l;
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS))
      goto fail_with;
    g_clear_error(&local);
    h = sqlenvfs_lease_read(s3, &etag, &local);
    if (h == NULL) {
      if (g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
        continue;  /* released and deleted in between: try to create it again */
      goto fail_with;
    }
    if (strcmp(h->token, l->me.token) == 0) {
      /* Our create succeeded, but its answer was lost and the retry saw
       * our own object. */
      g_free(l->etag);
      l->etag = g_steal_pointer(&etag);
      return l;
    }
    if (h->expires_us > now && !holder_is_dead_predecessor(h, &l->me)) {
      set_busy(error, "take", what, h);
      sqlenvfs_lease_free(l);
      return NULL;
    }
    if (write_me(l, SQLENVFS_S3_PUT_IF_MATCH, etag, &local)) {
      g_message("lease %s: taken over from host %s, root %s, pid %" G_GINT64_FORMAT " (%s)",
                what, h->host, h->root, h->pid,
                h->expires_us > now ? "that process is gone" : "expired");
      return l;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS) &&
        !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
      goto fail_with;
    /* Someone else wrote it first (or our answer was lost): read again. */
    continue;
  fail_with:
    g_propagate_prefixed_error(error, g_steal_pointer(&local), "take lease: ");
    sqlenvfs_lease_free(l);
    return NULL;
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
              "take lease %s: it changed under us %d times in a row (another writer is "
              "starting against this replica; stop it)",
              what, ACQUIRE_ROUNDS);
  sqlenvfs_lease_free(l);
  return NULL;
}

/* After a conditional write of ours failed with 412/404: is the lease
 * still ours (a retried write that had succeeded)? Marks it lost when not. */
static gboolean
recheck(SqlenvfsLease *l, const char *verb, GError **error)
{
  g_autofree char *what = sqlenvfs_s3_describe(l->s3, SQLENVFS_LEASE_KEY);
  g_autofree char *etag = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(SqlenvfsLeaseHolder) h = sqlenvfs_lease_read(l->s3, &etag, &local);

  if (h && strcmp(h->token, l->me.token) == 0) {
    g_free(l->etag);
    l->etag = g_steal_pointer(&etag);
    l->me.expires_us = h->expires_us;
    return TRUE;
  }
  if (h == NULL && !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
    /* Cannot tell: not lost yet, the caller tries again. */
    g_propagate_prefixed_error(error, g_steal_pointer(&local), "%s lease: ", verb);
    return FALSE;
  }
  l->is_lost = TRUE;
  if (h) {
    g_autofree char *until = format_time(h->expires_us);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "%s lease %s: lost, now held by host %s, root %s, pid %" G_GINT64_FORMAT
                " until %s; this writer stops writing to the replica",
                verb, what, h->host, h->root, h->pid, until);
  } else {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "%s lease %s: lost, the lease object was removed; this writer stops writing "
                "to the replica",
                verb, what);
  }
  return FALSE;
}

gboolean
sqlenvfs_lease_renew(SqlenvfsLease *lease, GError **error)
{
  g_autoptr(GError) local = NULL;
  gint64 old_expiry;

  g_return_val_if_fail(lease != NULL, FALSE);
  if (lease->is_lost || lease->is_released) {
    g_autofree char *what = sqlenvfs_s3_describe(lease->s3, SQLENVFS_LEASE_KEY);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "renew lease %s: this writer %s it", what,
                lease->is_lost ? "lost" : "released");
    return FALSE;
  }
  old_expiry = lease->me.expires_us;
  lease->me.expires_us = sqlenvfs_clock_now() + lease->ttl_us;
  if (write_me(lease, SQLENVFS_S3_PUT_IF_MATCH, lease->etag, &local))
    return TRUE;
  if (g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS) ||
      g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
    return recheck(lease, "renew", error);
  lease->me.expires_us = old_expiry;
  g_propagate_prefixed_error(error, g_steal_pointer(&local), "renew lease: ");
  return FALSE;
}

gboolean
sqlenvfs_lease_release(SqlenvfsLease *lease, GError **error)
{
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail(lease != NULL, FALSE);
  if (lease->is_lost || lease->is_released)
    return TRUE;
  lease->me.expires_us = 0;
  if (write_me(lease, SQLENVFS_S3_PUT_IF_MATCH, lease->etag, &local)) {
    lease->is_released = TRUE;
    return TRUE;
  }
  if ((g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS) ||
       g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))) {
    g_clear_error(&local);
    if (recheck(lease, "release", &local)) {
      /* Ours after all (expires already 0 when our write had landed). */
      if (lease->me.expires_us == 0) {
        lease->is_released = TRUE;
        return TRUE;
      }
      lease->me.expires_us = 0;
      if (write_me(lease, SQLENVFS_S3_PUT_IF_MATCH, lease->etag, &local)) {
        lease->is_released = TRUE;
        return TRUE;
      }
    } else if (lease->is_lost) {
      return TRUE;  /* someone else holds it: nothing of ours to give up */
    }
  }
  /* recheck's errors say "release lease" already. */
  if (g_str_has_prefix(local->message, "release lease"))
    g_propagate_error(error, g_steal_pointer(&local));
  else
    g_propagate_prefixed_error(error, g_steal_pointer(&local), "release lease: ");
  return FALSE;
}

gboolean
sqlenvfs_lease_is_lost(SqlenvfsLease *lease)
{
  return lease->is_lost;
}

gboolean
sqlenvfs_lease_is_valid(SqlenvfsLease *lease)
{
  return !lease->is_lost && !lease->is_released &&
         sqlenvfs_clock_now() < lease->me.expires_us;
}

const SqlenvfsLeaseHolder *
sqlenvfs_lease_holder(SqlenvfsLease *lease)
{
  return &lease->me;
}

void
sqlenvfs_lease_free(SqlenvfsLease *lease)
{
  if (lease == NULL)
    return;
  g_free(lease->me.host);
  g_free(lease->me.root);
  g_free(lease->me.token);
  g_free(lease->me.root_id);
  g_free(lease->etag);
  g_free(lease);
}
