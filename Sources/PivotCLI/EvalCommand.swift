import ArgumentParser
import Foundation
import Pivot
import PivotIO

extension SSIMBorder: ExpressibleByArgument {}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate edits on PIE-Bench as PnPInversion's evaluation does: background PSNR, MSE and SSIM.",
        discussion: """
            DIR is laid out as the working directory of PnPInversion's evaluate.py: DIR/data/mapping_file.json (entries \
            with prompts, editing types and RLE masks), DIR/data/annotation_images/<image_path> (the sources) and \
            DIR/output/<method>/annotation_images/<image_path> (each method's edits; a wider or taller output's \
            bottom-right corner is the edit). Metrics: psnr, mse, ssim, each also as _unedit_part (outside the mask) \
            and _edit_part (inside); both images are multiplied by the region's mask and measured over the whole \
            image, NaN when the region is empty. Means leave NaN out; MSE is printed x10^4 and SSIM x10^2, as the \
            paper's tables (--json gives raw values). With --clip-model DIR (a transformers CLIPModel folder: \
            config.json, model.safetensors, optionally preprocessor_config.json and tokenizer files; \
            openai/clip-vit-large-patch14 as the reference) also clip_similarity_source_image, \
            clip_similarity_target_image and clip_similarity_target_image_edit_part: torchmetrics' CLIPScore of the \
            source against the source prompt, the edit against the target prompt, and the edit multiplied by the mask \
            against the target prompt (prompts without their [brackets]). With --lpips-weights FILE (SqueezeNet 1.1 \
            and torchmetrics' lin layers, safetensors or .pt) also lpips, lpips_unedit_part and lpips_edit_part: \
            torchmetrics' LPIPS (squeeze) of the masked images in [-1, 1], printed x10^3. structure_distance (DINO) \
            is not supported yet.
            """)

    @OptionGroup var threadOptions: ThreadOptions

    @Argument(help: "The folder holding data/ and output/ (as evaluate.py's working directory).")
    var dir: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Methods, comma-separated: folder names under the outputs folder, or LABEL=PATH for a folder of edits anywhere (default: every folder of the outputs with an annotation_images folder).",
            valueName: "a,b"))
    var methods: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Metrics, comma-separated, as the reference names them (default: psnr_unedit_part,mse_unedit_part,ssim_unedit_part; with --clip-model also the three clip_similarity metrics).",
            valueName: "m,n"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("Editing types to evaluate, comma-separated (default 0-9, as the reference).", valueName: "0,1,…"))
    var editingTypes: String?

    @Option(
        name: .long,
        help: "SSIM's border: crop (torchmetrics up to 1.4, the paper's numbers) or reflect (torchmetrics 1.5 and later).")
    var ssimBorder: SSIMBorder = .crop

    @Option(name: .long, help: ArgumentHelp("The mapping file (default DIR/data/mapping_file.json).", valueName: "FILE"))
    var mapping: String?

    @Option(name: .long, help: ArgumentHelp("The source images' folder (default DIR/data/annotation_images).", valueName: "DIR"))
    var images: String?

    @Option(name: .long, help: ArgumentHelp("The folder of method folders (default DIR/output).", valueName: "DIR"))
    var outputs: String?

    @Option(name: .long, help: ArgumentHelp("Also write the reference's per-entry CSV (file_id, method|metric, …).", valueName: "FILE"))
    var csv: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A transformers CLIPModel folder (openai/clip-vit-large-patch14, as the reference) for the CLIP similarity metrics.",
            valueName: "DIR"))
    var clipModel: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The LPIPS network's weights (safetensors or .pt: SqueezeNet 1.1 and torchmetrics' lin layers) for the lpips metrics.",
            valueName: "FILE"))
    var lpipsWeights: String?

    @Flag(name: .long, help: "Print one JSON object (raw values, per entry too) instead of tables.")
    var json = false

    func run() throws {
        let defaults = PIEBenchLayout(root: dir)
        let layout = PIEBenchLayout(
            mapping: mapping ?? defaults.mapping, images: images ?? defaults.images, outputs: outputs ?? defaults.outputs)
        var options = PIEBenchOptions()
        options.clipModel = clipModel
        options.lpipsWeights = lpipsWeights
        if let metrics {
            options.metrics = try list(metrics, "metrics").map { try PIEMetric(name: $0) }
        } else {
            // The reference's default list, as far as the weights given allow.
            options.metrics =
                PIEMetric.defaults + (lpipsWeights != nil ? [PIEMetric(.lpips, .background)] : [])
                + (clipModel != nil ? PIEMetric.clip : [])
        }
        if let editingTypes { options.editingTypes = try list(editingTypes, "editing_types") }
        options.ssimBorder = ssimBorder
        let chosen = try methods.map { try list($0, "methods").map { item in method(item, layout) } }
        let report = try PIEBench.evaluate(layout: layout, methods: chosen, options: options)
        if let csv { try report.writeCSV(to: csv) }
        if json { print(String(decoding: try report.jsonData(), as: UTF8.self)) } else { print(report.text) }
    }

    /// The items of a comma-separated list (blanks trimmed); an empty item is an error naming the setting.
    private func list(_ text: String, _ key: String) throws -> [String] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if items.contains("") { throw SettingError(key, problem: "has an empty item in \"\(escapedForOneLine(text))\"") }
        return items
    }

    /// `NAME` (the outputs' NAME/annotation_images) or `LABEL=PATH`.
    private func method(_ item: String, _ layout: PIEBenchLayout) -> PIEBenchMethod {
        if let eq = item.firstIndex(of: "="), eq != item.startIndex {
            return PIEBenchMethod(name: String(item[..<eq]), folder: String(item[item.index(after: eq)...]))
        }
        return PIEBenchMethod(name: item, folder: layout.folder(ofMethod: item))
    }
}
