// The C shim (CPivotImageShim) calls libpng, libjpeg and libtiff. Their system-library module maps name the
// libraries to link (png16, jpeg, tiff), and Swift links a module's libraries when a Swift file imports it:
// these imports, alone in this file so that the C names stay out of the rest of the module, do that.
import CJPEG
import CPNG
import CTIFF
