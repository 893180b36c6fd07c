/* PNG reading and writing with libpng. libpng's errors longjmp to the setjmp in each function; the state
   that must survive the jump lives in a heap-allocated context, never in locals changed after setjmp. */
#include "internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

typedef struct png_context {
    jmp_buf jump;
    char *err;
    size_t errlen;
    FILE *file;
    png_structp png;
    png_infop info;
    uint8_t *data;
    png_bytep *rows;
} png_context;

static void on_png_error(png_structp png, png_const_charp message) {
    png_context *ctx = (png_context *)png_get_error_ptr(png);
    pv_set_error(ctx->err, ctx->errlen, "%s", message);
    longjmp(ctx->jump, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message; /* warnings (bad ancillary CRCs, unknown chunks) are not errors and are never printed */
}

static char *copy_string(const char *s, size_t n) {
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

/* Copies the text chunks libpng collected into out; PV_ERR_NOMEM on failure. */
static int collect_text(png_context *ctx, pv_image *out) {
    png_textp text = NULL;
    int count = png_get_text(ctx->png, ctx->info, &text, NULL);
    if (count <= 0 || text == NULL) return PV_OK;
    out->text_keys = calloc((size_t)count, sizeof(char *));
    out->text_values = calloc((size_t)count, sizeof(char *));
    if (!out->text_keys || !out->text_values) return PV_ERR_NOMEM;
    out->text_count = count;
    for (int i = 0; i < count; i++) {
        size_t length = text[i].compression >= PNG_ITXT_COMPRESSION_NONE ? text[i].itxt_length : text[i].text_length;
        const char *value = text[i].text ? text[i].text : "";
        if (text[i].text == NULL) length = 0;
        out->text_keys[i] = copy_string(text[i].key, strlen(text[i].key));
        out->text_values[i] = copy_string(value, length);
        if (!out->text_keys[i] || !out->text_values[i]) return PV_ERR_NOMEM;
    }
    return PV_OK;
}

int pv_png_read(const char *path, const pv_limits *limits, int want_text, pv_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    png_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        pv_set_error(err, errlen, "out of memory");
        return PV_ERR_NOMEM;
    }
    ctx->err = err;
    ctx->errlen = errlen;
    int status = PV_ERR_CORRUPT;

    ctx->file = fopen(path, "rb");
    if (!ctx->file) {
        pv_set_error(err, errlen, "cannot open: %s", strerror(errno));
        free(ctx);
        return PV_ERR_IO;
    }
    unsigned char signature[8];
    if (fread(signature, 1, 8, ctx->file) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        pv_set_error(err, errlen, "not a PNG file (bad signature)");
        fclose(ctx->file);
        free(ctx);
        return PV_ERR_CORRUPT;
    }
    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
    if (ctx->png) ctx->info = png_create_info_struct(ctx->png);
    if (!ctx->png || !ctx->info) {
        pv_set_error(err, errlen, "out of memory");
        status = PV_ERR_NOMEM;
        goto done;
    }
    if (setjmp(ctx->jump)) {
        status = PV_ERR_CORRUPT;
        goto done;
    }
    png_init_io(ctx->png, ctx->file);
    png_set_sig_bytes(ctx->png, 8);
    /* libpng's own size limit (default 1,000,000) would report over-limit images as errors in IHDR; lift it to
       PNG's maximum and check `limits` below, before allocating. */
    png_set_user_limits(ctx->png, 0x7fffffffu, 0x7fffffffu);
    png_set_chunk_malloc_max(ctx->png, 16u << 20);
    png_read_info(ctx->png, ctx->info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(ctx->png, ctx->info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    status = pv_check_size(width, height, limits, err, errlen);
    if (status != PV_OK) goto done;

    /* The ICC profile (iCCP) and the EXIF payload (eXIf, TIFF-structured) when present. */
    png_charp icc_name = NULL;
    int icc_compression = 0;
    png_bytep icc = NULL;
    png_uint_32 icc_length = 0;
    if (png_get_iCCP(ctx->png, ctx->info, &icc_name, &icc_compression, &icc, &icc_length) && icc && icc_length > 0) {
        out->icc = malloc(icc_length);
        if (out->icc) {
            memcpy(out->icc, icc, icc_length);
            out->icc_length = icc_length;
        }
    }
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_length = 0;
    if (png_get_eXIf_1(ctx->png, ctx->info, &exif_length, &exif) && exif && exif_length > 0) {
        out->exif = malloc(exif_length);
        if (out->exif) {
            memcpy(out->exif, exif, exif_length);
            out->exif_length = exif_length;
        }
    }
#endif

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
    if (png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(ctx->png);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (bit_depth == 16) png_set_swap(ctx->png);
#endif
    png_set_interlace_handling(ctx->png);
    png_read_update_info(ctx->png, ctx->info);

    int channels = png_get_channels(ctx->png, ctx->info);
    int depth = png_get_bit_depth(ctx->png, ctx->info);
    size_t row_bytes = png_get_rowbytes(ctx->png, ctx->info);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16) ||
        row_bytes != (size_t)width * (size_t)channels * (size_t)(depth / 8)) {
        pv_set_error(err, errlen, "unsupported PNG layout (%d channels, %d bits)", channels, depth);
        status = PV_ERR_UNSUPPORTED;
        goto done;
    }
    ctx->data = malloc(row_bytes * height);
    ctx->rows = malloc(sizeof(png_bytep) * height);
    if (!ctx->data || !ctx->rows) {
        pv_set_error(err, errlen, "out of memory for a %ux%u image", (unsigned)width, (unsigned)height);
        status = PV_ERR_NOMEM;
        goto done;
    }
    for (png_uint_32 y = 0; y < height; y++) ctx->rows[y] = ctx->data + (size_t)y * row_bytes;
    png_read_image(ctx->png, ctx->rows);
    png_read_end(ctx->png, ctx->info);

    if (want_text && collect_text(ctx, out) != PV_OK) {
        pv_set_error(err, errlen, "out of memory reading text chunks");
        status = PV_ERR_NOMEM;
        goto done;
    }
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->depth = depth;
    out->data = ctx->data;
    ctx->data = NULL;
    status = PV_OK;

done:
    if (ctx->png) png_destroy_read_struct(&ctx->png, ctx->info ? &ctx->info : NULL, NULL);
    if (ctx->file) fclose(ctx->file);
    free(ctx->data);
    free(ctx->rows);
    free(ctx);
    if (status != PV_OK) pv_image_free(out);
    return status;
}

int pv_png_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t depth, const pv_text *texts,
                 int32_t text_count, char *err, size_t errlen) {
    if (width <= 0 || height <= 0 || (depth != 8 && depth != 16) || (text_count > 0 && texts == NULL) || text_count < 0) {
        pv_set_error(err, errlen, "invalid image or text arguments");
        return PV_ERR_ARGUMENT;
    }
    png_context *ctx = calloc(1, sizeof *ctx);
    png_textp chunks = calloc(text_count > 0 ? (size_t)text_count : 1, sizeof(png_text));
    if (!ctx || !chunks) {
        free(ctx);
        free(chunks);
        pv_set_error(err, errlen, "out of memory");
        return PV_ERR_NOMEM;
    }
    ctx->err = err;
    ctx->errlen = errlen;
    int status = PV_ERR_IO;
    ctx->file = pv_stream_for_fd(fd, err, errlen);
    if (!ctx->file) goto done;
    ctx->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
    if (ctx->png) ctx->info = png_create_info_struct(ctx->png);
    if (!ctx->png || !ctx->info) {
        pv_set_error(err, errlen, "out of memory");
        status = PV_ERR_NOMEM;
        goto done;
    }
    if (setjmp(ctx->jump)) {
        status = PV_ERR_IO;
        goto done;
    }
    png_init_io(ctx->png, ctx->file);
    png_set_IHDR(ctx->png, ctx->info, (png_uint_32)width, (png_uint_32)height, depth, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int32_t i = 0; i < text_count; i++) {
        chunks[i].compression = texts[i].international ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
        chunks[i].key = (png_charp)texts[i].key;
        chunks[i].text = (png_charp)texts[i].value;
        chunks[i].text_length = strlen(texts[i].value);
    }
    if (text_count > 0) png_set_text(ctx->png, ctx->info, chunks, text_count);
    png_set_sRGB(ctx->png, ctx->info, PNG_sRGB_INTENT_PERCEPTUAL); /* the samples are sRGB: say so */
    png_write_info(ctx->png, ctx->info);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (depth == 16) png_set_swap(ctx->png); /* PNG stores 16-bit samples big-endian */
#endif
    size_t row_bytes = (size_t)width * 3 * (size_t)(depth / 8);
    for (int32_t y = 0; y < height; y++) png_write_row(ctx->png, rgb + (size_t)y * row_bytes);
    png_write_end(ctx->png, NULL);
    status = PV_OK;

done:
    if (ctx->png) png_destroy_write_struct(&ctx->png, ctx->info ? &ctx->info : NULL);
    if (ctx->file) {
        char close_err[256] = "";
        int closed = pv_close_stream(ctx->file, close_err, sizeof close_err);
        if (status == PV_OK && closed != PV_OK) {
            pv_set_error(err, errlen, "%s", close_err);
            status = closed;
        }
    }
    free(chunks);
    free(ctx);
    return status;
}
