#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pv_set_error_v(char *err, size_t errlen, const char *format, va_list args) {
    if (err == NULL || errlen == 0) return;
    vsnprintf(err, errlen, format, args);
    for (char *p = err; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    }
    /* Drop trailing spaces left by a final newline. */
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == ' ') err[--n] = '\0';
}

void pv_set_error(char *err, size_t errlen, const char *format, ...) {
    va_list args;
    va_start(args, format);
    pv_set_error_v(err, errlen, format, args);
    va_end(args);
}

int pv_check_size(int64_t width, int64_t height, const pv_limits *limits, char *err, size_t errlen) {
    if (width <= 0 || height <= 0) {
        pv_set_error(err, errlen, "invalid image size %lldx%lld", (long long)width, (long long)height);
        return PV_ERR_CORRUPT;
    }
    if (width > limits->max_side || height > limits->max_side || width * height > limits->max_pixels) {
        pv_set_error(err, errlen, "image is %lldx%lld, over the limit of %lld pixels per side and %lld pixels in all",
                     (long long)width, (long long)height, (long long)limits->max_side, (long long)limits->max_pixels);
        return PV_ERR_TOO_LARGE;
    }
    return PV_OK;
}

FILE *pv_stream_for_fd(int fd, char *err, size_t errlen) {
    int copy = dup(fd);
    if (copy < 0) {
        pv_set_error(err, errlen, "dup: %s", strerror(errno));
        return NULL;
    }
    FILE *stream = fdopen(copy, "wb");
    if (stream == NULL) {
        pv_set_error(err, errlen, "fdopen: %s", strerror(errno));
        close(copy);
    }
    return stream;
}

int pv_close_stream(FILE *stream, char *err, size_t errlen) {
    int failed = fflush(stream) != 0 || ferror(stream);
    int saved = errno;
    if (fclose(stream) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        pv_set_error(err, errlen, "write: %s", strerror(saved));
        return PV_ERR_IO;
    }
    return PV_OK;
}

void pv_image_free(pv_image *image) {
    if (image == NULL) return;
    free(image->data);
    free(image->exif);
    free(image->icc);
    if (image->text_keys) {
        for (int32_t i = 0; i < image->text_count; i++) free(image->text_keys[i]);
        free(image->text_keys);
    }
    if (image->text_values) {
        for (int32_t i = 0; i < image->text_count; i++) free(image->text_values[i]);
        free(image->text_values);
    }
    memset(image, 0, sizeof *image);
}
