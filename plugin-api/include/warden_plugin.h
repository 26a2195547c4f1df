/*
 * warden_plugin.h: the Warden check plugin ABI, version 1.1.
 *
 * A plugin is a shared library exporting one function,
 *
 *     const WardenPluginDescriptor *warden_plugin_entry(void);
 *
 * that returns a pointer to static, immutable data. The host reads the
 * header first (magic, major version, size) and refuses another major
 * version. Everything after the header may grow in later minor versions, by
 * appending fields only: each side reads no further than the size the other
 * declared, and treats fields beyond it as absent (NULL).
 *
 * Data crossing the boundary is UTF-8 JSON with explicit lengths. A buffer
 * the plugin writes (a result or an error message) is released by the
 * plugin's own free_buf; the host never frees plugin memory and vice versa.
 *
 * Threading: the host never calls one instance from two threads at once,
 * but successive calls may come from different threads. The host's log
 * function may be called from any thread while the instance lives.
 *
 * This header is checked against the Rust definitions in
 * plugin-api/src/ffi.rs by plugin-api/tests/header.rs.
 */
#ifndef WARDEN_PLUGIN_H
#define WARDEN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "WRDN" as a little-endian 32-bit integer. */
#define WARDEN_ABI_MAGIC 0x4E445257u
#define WARDEN_ABI_MAJOR 1
#define WARDEN_ABI_MINOR 1
#define WARDEN_PLUGIN_ENTRY_SYMBOL "warden_plugin_entry"

/* Return codes of create and check. */
#define WARDEN_OK 0
#define WARDEN_ERROR 1

/* Log levels for WardenHost.log; lower is more severe. */
#define WARDEN_LOG_ERROR 1u
#define WARDEN_LOG_WARN 2u
#define WARDEN_LOG_INFO 3u
#define WARDEN_LOG_DEBUG 4u
#define WARDEN_LOG_TRACE 5u

/* The fixed prefix of every descriptor; its shape never changes. */
typedef struct WardenAbiHeader {
    uint32_t magic;     /* WARDEN_ABI_MAGIC */
    uint16_t abi_major; /* WARDEN_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor; /* WARDEN_ABI_MINOR the plugin was built with */
    uint32_t size;      /* sizeof the whole descriptor, as the plugin knows it */
    uint32_t reserved;  /* zero */
} WardenAbiHeader;

/* Bytes written by the plugin, released with its free_buf. */
typedef struct WardenBuf {
    uint8_t *ptr; /* NULL for an empty buffer */
    size_t len;
} WardenBuf;

typedef void (*WardenLogFn)(void *ctx, uint32_t level, const uint8_t *msg, size_t len);

/* What the host offers an instance. Valid from create until destroy returns. */
typedef struct WardenHost {
    uint32_t size;      /* sizeof this struct, as the host knows it */
    uint16_t abi_major; /* the ABI the host speaks */
    uint16_t abi_minor;
    void *ctx;          /* pass back to every callback */
    WardenLogFn log;    /* may be NULL; writes one line into the daemon's log */
} WardenHost;

/* Per-run facts, passed to every check call. */
typedef struct WardenRunContext {
    uint32_t size;                  /* sizeof this struct, as the host knows it */
    uint16_t abi_major;             /* the ABI the host speaks */
    uint16_t abi_minor;
    uint64_t timeout_ms;            /* time left for this run when the call started */
    uint64_t deadline_monotonic_ns; /* the deadline on CLOCK_MONOTONIC */
} WardenRunContext;

/*
 * create: build an instance from UTF-8 JSON config (config_len bytes, not
 * NUL-terminated). On success store it in *out_instance and return
 * WARDEN_OK. On failure return WARDEN_ERROR and optionally write a one-line
 * message naming the offending key to *out_error.
 */
typedef int32_t (*WardenCreateFn)(const uint8_t *config, size_t config_len,
                                  const WardenHost *host, void **out_instance,
                                  WardenBuf *out_error);

/*
 * check: run once and write the result JSON to *out, returning WARDEN_OK:
 *   {"status": "ok"|"warning"|"critical"|"unknown",
 *    "message": "one line",
 *    "reason": "refused"|"dns"|"tls"|"auth"|"timeout"|"protocol"|
 *              "threshold"|"crashed"|"exhausted"|"error"|"other",   (optional)
 *    "metrics": [{"name": "x_seconds", "value": 0.25, "unit": "seconds",
 *                 "labels": {"k": "v"}}]}                            (optional)
 * Or return WARDEN_ERROR with a message in *out; the run counts as "error".
 */
typedef int32_t (*WardenCheckFn)(void *instance, const WardenRunContext *ctx, WardenBuf *out);

/* Release a buffer this plugin wrote. */
typedef void (*WardenFreeBufFn)(WardenBuf buf);

/* Destroy an instance made by create. */
typedef void (*WardenDestroyFn)(void *instance);

typedef struct WardenPluginDescriptor {
    WardenAbiHeader header;
    const char *name;        /* NUL-terminated; the `plugin` key of a check */
    const char *version;     /* NUL-terminated */
    WardenCreateFn create;   /* required */
    WardenCheckFn check;     /* required */
    WardenFreeBufFn free_buf; /* required */
    WardenDestroyFn destroy; /* may be NULL */
    /* Since 1.1 */
    const char *description; /* NUL-terminated one-line description, or NULL */
} WardenPluginDescriptor;

typedef const WardenPluginDescriptor *(*WardenPluginEntry)(void);

#ifdef __cplusplus
}
#endif

#endif /* WARDEN_PLUGIN_H */
