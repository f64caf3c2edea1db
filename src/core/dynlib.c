/*
 * dynlib.c — libcurl, libpq, libcrypto and GIO, loaded when first used.
 *
 * Only replicas (libcurl, libcrypto), migrate-pg (libpq) and recover's
 * sqlite3 shell (GIO's subprocesses) use these libraries, but linked into
 * the program they and what they pull in (some 35 shared libraries: TLS,
 * Kerberos, LDAP, GObject, libmount, ...) were mapped and relocated at the
 * start of every command: about 7 ms of CPU, more than the rest of a
 * `verify` of one new archive segment. So the program is built with their
 * headers only, and the functions it calls are defined here: the first call
 * loads the library (by the soname it was built against, given by the build
 * as SQLENVFS_*_SONAME) and every later one goes straight to it. The
 * prototypes come from the libraries' own headers, so the compiler checks
 * each definition against them.
 *
 * A library that cannot be loaded (an installation missing a package
 * sqlenvfs depends on) ends the process with a message naming it; libcrypto
 * only makes digests faster, so without it they are computed with GLib's.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#define CURL_DISABLE_TYPECHECK /* the real prototypes, not the checking macros */
#include <curl/curl.h>
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif
#ifdef HAVE_LIBCRYPTO
#include <openssl/evp.h>
#endif
#include <gio/gio.h>

/* dlopen @soname once (NULL when it cannot be; *why says why). */
static void *
open_once(gsize *once, void **handle, const char *soname, char **why)
{
  if (g_once_init_enter(once)) {
    *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (*handle == NULL) {
      const char *e = dlerror();
      *why = g_strdup(e ? e : "unknown error");
    }
    g_once_init_leave(once, 1);
  }
  return *handle;
}

G_GNUC_NORETURN static void
missing(const char *soname, const char *what, const char *why)
{
  fprintf(stderr, "sqlenvfs: cannot load %s, which %s needs: %s (install it: sqlenvfs was built "
          "with it and depends on it)\n", soname, what, why);
  exit(1);
}

/* The symbol @name of @handle; a library without it is not the one the
 * program was built against. */
static void *
symbol(void *handle, const char *soname, const char *what, const char *name)
{
  void *p = dlsym(handle, name);
  if (p == NULL) {
    g_autofree char *why = g_strdup_printf("it has no %s (not the version sqlenvfs was built "
                                           "with)", name);
    missing(soname, what, why);
  }
  return p;
}

/* *slot, the symbol @name of the library @handle() opens, looked up once. */
static void *
lookup(void **slot, void *(*handle)(void), const char *soname, const char *what,
       const char *name)
{
  void *p = g_atomic_pointer_get(slot);
  if (p == NULL) {
    p = symbol(handle(), soname, what, name);
    g_atomic_pointer_set(slot, p);
  }
  return p;
}

/* Declares the slot of @name; LOOKUP(lib, name) is the library's @name,
 * typed by its prototype. */
#define POINTER(name) static void *p_##name
#define LOOKUP(lib, name)                                                                       \
  ((__typeof__(name) *)lookup(&p_##name, lib##_handle, lib##_SONAME, lib##_WHAT, #name))

/* ------------------------------------------------------------------ */
/* libcurl: the S3 client of replicas (s3.c)                          */

#define curl_SONAME SQLENVFS_CURL_SONAME
#define curl_WHAT "a replica on object storage"

static void *
curl_handle(void)
{
  static gsize once;
  static void *handle;
  static char *why;
  if (open_once(&once, &handle, curl_SONAME, &why) == NULL)
    missing(curl_SONAME, curl_WHAT, why);
  return handle;
}

POINTER(curl_global_init);
POINTER(curl_easy_init);
POINTER(curl_easy_cleanup);
POINTER(curl_easy_reset);
POINTER(curl_easy_setopt);
POINTER(curl_easy_perform);
POINTER(curl_easy_getinfo);
POINTER(curl_easy_strerror);
POINTER(curl_slist_append);
POINTER(curl_slist_free_all);
POINTER(curl_getdate);

CURLcode
curl_global_init(long flags)
{
  return LOOKUP(curl, curl_global_init)(flags);
}

CURL *
curl_easy_init(void)
{
  return LOOKUP(curl, curl_easy_init)();
}

void
curl_easy_cleanup(CURL *curl)
{
  LOOKUP(curl, curl_easy_cleanup)(curl);
}

void
curl_easy_reset(CURL *curl)
{
  LOOKUP(curl, curl_easy_reset)(curl);
}

/* The option's type decides its argument's (as libcurl itself reads it). */
CURLcode
curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
  __typeof__(curl_easy_setopt) *fn = LOOKUP(curl, curl_easy_setopt);
  va_list ap;
  CURLcode r;

  va_start(ap, option);
  if (option < CURLOPTTYPE_OBJECTPOINT)
    r = fn(curl, option, va_arg(ap, long));
  else if (option < CURLOPTTYPE_FUNCTIONPOINT)
    r = fn(curl, option, va_arg(ap, void *));
  else if (option < CURLOPTTYPE_OFF_T)
    r = fn(curl, option, va_arg(ap, void (*)(void)));
  else if (option < CURLOPTTYPE_BLOB)
    r = fn(curl, option, va_arg(ap, curl_off_t));
  else
    r = fn(curl, option, va_arg(ap, void *));
  va_end(ap);
  return r;
}

/* Every piece of information is returned through one pointer. */
CURLcode
curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
  __typeof__(curl_easy_getinfo) *fn = LOOKUP(curl, curl_easy_getinfo);
  va_list ap;
  CURLcode r;

  va_start(ap, info);
  r = fn(curl, info, va_arg(ap, void *));
  va_end(ap);
  return r;
}

CURLcode
curl_easy_perform(CURL *curl)
{
  return LOOKUP(curl, curl_easy_perform)(curl);
}

const char *
curl_easy_strerror(CURLcode code)
{
  return LOOKUP(curl, curl_easy_strerror)(code);
}

struct curl_slist *
curl_slist_append(struct curl_slist *list, const char *data)
{
  return LOOKUP(curl, curl_slist_append)(list, data);
}

void
curl_slist_free_all(struct curl_slist *list)
{
  LOOKUP(curl, curl_slist_free_all)(list);
}

time_t
curl_getdate(const char *p, const time_t *unused)
{
  return LOOKUP(curl, curl_getdate)(p, unused);
}

/* ------------------------------------------------------------------ */
/* libpq: migrate-pg's PostgreSQL side (pgsource.c)                    */

#ifdef HAVE_LIBPQ
#define pq_SONAME SQLENVFS_PQ_SONAME
#define pq_WHAT "migrate-pg"

static void *
pq_handle(void)
{
  static gsize once;
  static void *handle;
  static char *why;
  if (open_once(&once, &handle, pq_SONAME, &why) == NULL)
    missing(pq_SONAME, pq_WHAT, why);
  return handle;
}

/* A function of libpq, forwarded: (return type, name, parameters, arguments). */
#define PQ_FORWARD(ret, name, params, args)                                                     \
  POINTER(name);                                                                                \
  ret name params                                                                               \
  {                                                                                             \
    return LOOKUP(pq, name) args;                                                               \
  }
#define PQ_FORWARD_VOID(name, params, args)                                                     \
  POINTER(name);                                                                                \
  void name params                                                                              \
  {                                                                                             \
    LOOKUP(pq, name) args;                                                                      \
  }

PQ_FORWARD(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg),
           (conninfo, errmsg))
PQ_FORWARD_VOID(PQconninfoFree, (PQconninfoOption *opts), (opts))
PQ_FORWARD_VOID(PQfreemem, (void *ptr), (ptr))
PQ_FORWARD(PGconn *, PQconnectdbParams,
           (const char *const *keywords, const char *const *values, int expand_dbname),
           (keywords, values, expand_dbname))
PQ_FORWARD(char *, PQdb, (const PGconn *conn), (conn))
PQ_FORWARD(char *, PQhost, (const PGconn *conn), (conn))
PQ_FORWARD(char *, PQport, (const PGconn *conn), (conn))
PQ_FORWARD(ConnStatusType, PQstatus, (const PGconn *conn), (conn))
PQ_FORWARD(char *, PQerrorMessage, (const PGconn *conn), (conn))
PQ_FORWARD(int, PQconnectionNeedsPassword, (const PGconn *conn), (conn))
PQ_FORWARD(int, PQsetClientEncoding, (PGconn *conn, const char *encoding), (conn, encoding))
PQ_FORWARD(PQnoticeProcessor, PQsetNoticeProcessor,
           (PGconn *conn, PQnoticeProcessor proc, void *arg), (conn, proc, arg))
PQ_FORWARD(int, PQserverVersion, (const PGconn *conn), (conn))
PQ_FORWARD_VOID(PQfinish, (PGconn *conn), (conn))
PQ_FORWARD(char *, PQescapeIdentifier, (PGconn *conn, const char *str, size_t len),
           (conn, str, len))
PQ_FORWARD(PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query))
PQ_FORWARD(PGresult *, PQexecParams,
           (PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
            const char *const *paramValues, const int *paramLengths, const int *paramFormats,
            int resultFormat),
           (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats,
            resultFormat))
PQ_FORWARD(ExecStatusType, PQresultStatus, (const PGresult *res), (res))
PQ_FORWARD(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode))
PQ_FORWARD_VOID(PQclear, (PGresult *res), (res))
PQ_FORWARD(int, PQntuples, (const PGresult *res), (res))
PQ_FORWARD(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),
           (res, tup_num, field_num))
PQ_FORWARD(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num),
           (res, tup_num, field_num))
PQ_FORWARD(int, PQgetlength, (const PGresult *res, int tup_num, int field_num),
           (res, tup_num, field_num))
PQ_FORWARD(int, PQsendQuery, (PGconn *conn, const char *query), (conn, query))
PQ_FORWARD(int, PQsocket, (const PGconn *conn), (conn))
PQ_FORWARD(int, PQconsumeInput, (PGconn *conn), (conn))
PQ_FORWARD(int, PQisBusy, (PGconn *conn), (conn))
PQ_FORWARD(PGresult *, PQgetResult, (PGconn *conn), (conn))
PQ_FORWARD(PGcancel *, PQgetCancel, (PGconn *conn), (conn))
PQ_FORWARD(int, PQcancel, (PGcancel *cancel, char *errbuf, int errbufsize),
           (cancel, errbuf, errbufsize))
PQ_FORWARD_VOID(PQfreeCancel, (PGcancel *cancel), (cancel))
#endif

/* ------------------------------------------------------------------ */
/* libcrypto: the S3 client's digests (s3.c); GLib's without it        */

#ifdef HAVE_LIBCRYPTO
static void *
crypto_handle(void)
{
  static gsize once;
  static void *handle;
  static char *why;
  if (open_once(&once, &handle, SQLENVFS_CRYPTO_SONAME, &why) == NULL) {
    static gsize told;
    if (g_once_init_enter(&told)) {
      g_debug("%s cannot be loaded (%s): digests are computed with GLib's", SQLENVFS_CRYPTO_SONAME,
              why);
      g_once_init_leave(&told, 1);
    }
  }
  return handle;
}

/* The symbol @name of libcrypto, NULL without it. */
static void *
crypto_symbol(gsize *once, void **p, const char *name)
{
  if (g_once_init_enter(once)) {
    void *h = crypto_handle();
    *p = h ? dlsym(h, name) : NULL;
    g_once_init_leave(once, 1);
  }
  return *p;
}

/* EVP_sha256() and EVP_md5() are NULL without libcrypto, and EVP_Digest()
 * then fails (0), which s3.c answers with GLib's digest. */
const EVP_MD *
EVP_sha256(void)
{
  static gsize once;
  static void *p;
  __typeof__(EVP_sha256) *fn = (__typeof__(EVP_sha256) *)crypto_symbol(&once, &p, "EVP_sha256");
  return fn ? fn() : NULL;
}

const EVP_MD *
EVP_md5(void)
{
  static gsize once;
  static void *p;
  __typeof__(EVP_md5) *fn = (__typeof__(EVP_md5) *)crypto_symbol(&once, &p, "EVP_md5");
  return fn ? fn() : NULL;
}

int
EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
           const EVP_MD *type, ENGINE *impl)
{
  static gsize once;
  static void *p;
  __typeof__(EVP_Digest) *fn = (__typeof__(EVP_Digest) *)crypto_symbol(&once, &p, "EVP_Digest");
  if (fn == NULL || type == NULL)
    return 0;
  return fn(data, count, md, size, type, impl);
}
#endif

/* ------------------------------------------------------------------ */
/* GIO (and GObject through it): recover's sqlite3 shell (recover.c)   */

#define gio_SONAME SQLENVFS_GIO_SONAME
#define gio_WHAT "recover"

static void *
gio_handle(void)
{
  static gsize once;
  static void *handle;
  static char *why;
  if (open_once(&once, &handle, gio_SONAME, &why) == NULL)
    missing(gio_SONAME, gio_WHAT, why);
  return handle;
}

/* A function of GIO or GObject, forwarded like PQ_FORWARD's. */
#define GIO_FORWARD(ret, name, params, args)                                                    \
  POINTER(name);                                                                                \
  ret name params                                                                               \
  {                                                                                             \
    return LOOKUP(gio, name) args;                                                              \
  }
#define GIO_FORWARD_VOID(name, params, args)                                                    \
  POINTER(name);                                                                                \
  void name params                                                                              \
  {                                                                                             \
    LOOKUP(gio, name) args;                                                                     \
  }

GIO_FORWARD_VOID(g_object_unref, (gpointer object), (object))
GIO_FORWARD(GSubprocessLauncher *, g_subprocess_launcher_new, (GSubprocessFlags flags), (flags))
GIO_FORWARD_VOID(g_subprocess_launcher_set_cwd, (GSubprocessLauncher *self, const gchar *cwd),
                 (self, cwd))
GIO_FORWARD_VOID(g_subprocess_launcher_take_stderr_fd, (GSubprocessLauncher *self, gint fd),
                 (self, fd))
GIO_FORWARD(GSubprocess *, g_subprocess_launcher_spawnv,
            (GSubprocessLauncher *self, const gchar *const *argv, GError **error),
            (self, argv, error))
GIO_FORWARD(GInputStream *, g_subprocess_get_stdout_pipe, (GSubprocess *subprocess), (subprocess))
GIO_FORWARD_VOID(g_subprocess_force_exit, (GSubprocess *subprocess), (subprocess))
GIO_FORWARD(gboolean, g_subprocess_wait,
            (GSubprocess *subprocess, GCancellable *cancellable, GError **error),
            (subprocess, cancellable, error))
GIO_FORWARD(gboolean, g_subprocess_get_if_exited, (GSubprocess *subprocess), (subprocess))
GIO_FORWARD(gint, g_subprocess_get_exit_status, (GSubprocess *subprocess), (subprocess))
GIO_FORWARD(GDataInputStream *, g_data_input_stream_new, (GInputStream *base_stream),
            (base_stream))
GIO_FORWARD_VOID(g_data_input_stream_set_newline_type,
                 (GDataInputStream *stream, GDataStreamNewlineType type), (stream, type))
GIO_FORWARD(char *, g_data_input_stream_read_line,
            (GDataInputStream *stream, gsize *length, GCancellable *cancellable, GError **error),
            (stream, length, cancellable, error))

/* The arguments after @argv0, up to NULL, as g_subprocess_launcher_spawnv()'s. */
GSubprocess *
g_subprocess_launcher_spawn(GSubprocessLauncher *self, GError **error, const gchar *argv0, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  const gchar *arg;
  va_list ap;

  g_ptr_array_add(argv, (gpointer)argv0);
  va_start(ap, argv0);
  while ((arg = va_arg(ap, const gchar *)) != NULL)
    g_ptr_array_add(argv, (gpointer)arg);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  return g_subprocess_launcher_spawnv(self, (const gchar *const *)argv->pdata, error);
}
