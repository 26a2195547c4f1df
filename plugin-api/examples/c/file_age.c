/*
 * file_age: a Warden check plugin written in C.
 *
 * Passes while a file exists and was modified less than `max_age_seconds`
 * ago: a backup job's marker file, a cron heartbeat, a certificate renewal
 * stamp. Config:
 *
 *     [check.config]
 *     path = "/var/backups/last-success"
 *     max_age_seconds = 90000
 *
 * Build:  cc -shared -fPIC -O2 -Wall -I plugin-api/include \
 *             -o libwarden_file_age.so plugin-api/examples/c/file_age.c
 *
 * A real plugin would use a JSON library; this example reads its two keys
 * with a small scanner so it depends on nothing but libc.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "warden_plugin.h"

typedef struct {
    char path[4096];
    double max_age_seconds;
    const WardenHost *host;
} FileAge;

/* Hands a heap copy of `text` to the host; freed by file_age_free_buf. */
static void put(WardenBuf *out, const char *text) {
    size_t len = strlen(text);
    out->ptr = malloc(len);
    if (out->ptr == NULL) {
        out->len = 0;
        return;
    }
    memcpy(out->ptr, text, len);
    out->len = len;
}

static void host_log(const WardenHost *host, uint32_t level, const char *text) {
    /* Read `log` only if the host's table is large enough to have it. */
    if (host != NULL &&
        host->size >= offsetof(WardenHost, log) + sizeof(host->log) && host->log != NULL) {
        host->log(host->ctx, level, (const uint8_t *)text, strlen(text));
    }
}

/* Finds `"key"` followed by a colon in a JSON object; returns what follows. */
static const char *find_key(const char *json, size_t len, const char *key) {
    size_t key_len = strlen(key);
    for (size_t i = 0; i + key_len + 2 <= len; i++) {
        if (json[i] == '"' && strncmp(json + i + 1, key, key_len) == 0 &&
            json[i + 1 + key_len] == '"') {
            const char *p = json + i + key_len + 2;
            while (p < json + len && (*p == ' ' || *p == ':')) p++;
            return p;
        }
    }
    return NULL;
}

static int32_t fail(WardenBuf *out, const char *message) {
    if (out != NULL) put(out, message);
    return WARDEN_ERROR;
}

static int32_t file_age_create(const uint8_t *config, size_t config_len, const WardenHost *host,
                               void **out_instance, WardenBuf *out_error) {
    const char *json = (const char *)config;
    FileAge *self = calloc(1, sizeof *self);
    if (self == NULL) return fail(out_error, "out of memory");
    self->host = host;

    const char *path = find_key(json, config_len, "path");
    if (path == NULL || *path != '"') {
        free(self);
        return fail(out_error, "`path` is required and must be a string");
    }
    const char *end = memchr(path + 1, '"', config_len - (size_t)(path + 1 - json));
    size_t path_len = end == NULL ? 0 : (size_t)(end - path - 1);
    if (end == NULL || path_len == 0 || path_len >= sizeof self->path ||
        memchr(path + 1, '\\', path_len) != NULL) {
        free(self);
        return fail(out_error, "`path` must be a non-empty string without escapes");
    }
    memcpy(self->path, path + 1, path_len);

    self->max_age_seconds = 86400;
    const char *age = find_key(json, config_len, "max_age_seconds");
    if (age != NULL) {
        char *stop = NULL;
        self->max_age_seconds = strtod(age, &stop);
        if (stop == age || self->max_age_seconds <= 0) {
            free(self);
            return fail(out_error, "`max_age_seconds` must be a positive number");
        }
    }
    *out_instance = self;
    return WARDEN_OK;
}

/* Writes `text` as a JSON string body (without quotes), escaping as needed. */
static size_t escape(char *out, size_t room, const char *text) {
    size_t n = 0;
    for (; *text != '\0' && n + 7 < room; text++) {
        unsigned char c = (unsigned char)*text;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, room - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static int32_t file_age_check(void *instance, const WardenRunContext *ctx, WardenBuf *out) {
    (void)ctx; /* a stat is far below any deadline */
    FileAge *self = instance;
    char path[sizeof self->path * 6 + 1];
    escape(path, sizeof path, self->path);
    char result[sizeof path + 512];

    struct stat st;
    if (stat(self->path, &st) != 0) {
        char why[256];
        escape(why, sizeof why, strerror(errno));
        snprintf(result, sizeof result,
                 "{\"status\":\"critical\",\"reason\":\"other\",\"message\":\"%s: %s\"}", path, why);
        host_log(self->host, WARDEN_LOG_WARN, "file missing");
        put(out, result);
        return WARDEN_OK;
    }
    double age = difftime(time(NULL), st.st_mtime);
    const char *status = age <= self->max_age_seconds ? "ok" : "critical";
    snprintf(result, sizeof result,
             "{\"status\":\"%s\",%s\"message\":\"%s modified %.0f s ago (limit %.0f s)\","
             "\"metrics\":[{\"name\":\"file_age_seconds\",\"value\":%.3f,\"unit\":\"seconds\"}]}",
             status, age <= self->max_age_seconds ? "" : "\"reason\":\"threshold\",", path, age,
             self->max_age_seconds, age);
    put(out, result);
    return WARDEN_OK;
}

static void file_age_free_buf(WardenBuf buf) { free(buf.ptr); }

static void file_age_destroy(void *instance) { free(instance); }

static const WardenPluginDescriptor DESCRIPTOR = {
    .header = {
        .magic = WARDEN_ABI_MAGIC,
        .abi_major = WARDEN_ABI_MAJOR,
        .abi_minor = WARDEN_ABI_MINOR,
        .size = sizeof(WardenPluginDescriptor),
        .reserved = 0,
    },
    .name = "file_age",
    .version = "1.0.0",
    .create = file_age_create,
    .check = file_age_check,
    .free_buf = file_age_free_buf,
    .destroy = file_age_destroy,
    .description = "Checks that a file exists and was modified recently",
};

const WardenPluginDescriptor *warden_plugin_entry(void) { return &DESCRIPTOR; }
