// The edit form of `POST /api/edits`: its fields read into the library's `EditSettings` with the very
// parsing `pivot edit` uses (`EditSettings.set`, in the CLI's order), so a mistake gets the CLI's message with
// the settings named by their form-field keys.
import Foundation
import Pivot
import PivotDiffusion
import PivotIO

/// What a client asked for: the photo, the prompts and the settings.
struct EditForm {
    /// The fields the form takes; any other is a 400.
    static let fieldNames: Set<String> = [
        "photo", "source", "target", "method", "steps", "guidance", "inner_steps", "cross_replace", "self_replace", "reweight", "blend",
        "blend_threshold", "mode",
    ]
    /// The longest file name kept for display.
    static let maxFilenameLength = 200

    var photo: UploadedForm.File
    var source: String
    var targets: [String]
    var settings: EditSettings
    /// The settings as the client gave them, for the job list (the page restores its sliders from them).
    var given: [String: [String]]

    /// Reads and checks the form: a photo, a source prompt, at least one target, and settings each in the
    /// form `EditSettings.set` takes.
    init(_ form: UploadedForm) throws(APIError) {
        for name in form.fields.map(\.name) + form.files.keys where !Self.fieldNames.contains(name) {
            throw .badRequest("unknown field '\(escapedForOneLine(name))'")
        }
        guard let photo = form.files["photo"], !photo.bytes.isEmpty else { throw .badRequest("photo: no photo in the upload") }
        guard form.values("photo").isEmpty else { throw .badRequest("photo must be a file") }
        guard let source = try form.value("source")?.trimmingCharacters(in: .whitespacesAndNewlines), !source.isEmpty else {
            throw .badRequest("source: give the prompt that describes the photo")
        }
        let targets = form.values("target").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard !targets.isEmpty, targets.allSatisfy({ !$0.isEmpty }) else { throw .badRequest("target: give at least one edited prompt") }
        guard targets.count <= 8 else { throw .badRequest("target: at most 8 edited prompts in one edit") }
        var s = EditSettings()
        var given: [String: [String]] = [:]
        do {
            // The CLI's order: the inversion flags, --cross-replace items, --self-replace, --reweight items, the rest.
            for key in ["method", "steps", "guidance", "inner_steps"] {
                if let value = try form.value(key), !value.isEmpty { try s.set(key, value) }
            }
            for item in form.values("cross_replace") { try s.set("cross_replace", item) }
            if let selfReplace = try form.value("self_replace"), !selfReplace.isEmpty { try s.set("self_replace", selfReplace) }
            for item in form.values("reweight") { try s.set("reweight", item) }
            if let mode = try form.value("mode"), !mode.isEmpty { try s.set("mode", mode) }
            s.edit.blend = form.values("blend").flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init) }
            if let threshold = try form.value("blend_threshold"), !threshold.isEmpty { try s.set("blend_threshold", threshold) }
        } catch let error as APIError {
            throw error
        } catch {
            throw .invalid(error)
        }
        for key in ["method", "steps", "guidance", "inner_steps", "cross_replace", "self_replace", "reweight", "blend", "blend_threshold", "mode"] {
            let values = form.values(key).filter { !$0.isEmpty }
            if !values.isEmpty { given[key] = values }
        }
        var file = photo
        file.filename = String(Self.displayName(photo.filename).prefix(Self.maxFilenameLength))
        self.photo = file
        self.source = source
        self.targets = targets
        self.settings = s
        self.given = given
    }

    /// The last path component of a client's file name, without control characters ("photo" when empty).
    static func displayName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let clean = String(last.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
        return clean.isEmpty ? "photo" : clean
    }

    /// Checks what `StableDiffusion.edit` checks before any work (the words and options of the
    /// Prompt-to-Prompt plan, then the inversion settings), so that a mistake is a 400 now rather than a failed job.
    func validate(with sd: StableDiffusion) throws(APIError) {
        do {
            _ = try sd.promptToPrompt(
                source: source, targets: targets, steps: settings.inversion.steps, latentSide: sd.latentSide, options: settings.edit)
            try settings.inversion.validate(trainTimesteps: sd.scheduler.numTrainTimesteps)
        } catch {
            throw .invalid(error)
        }
    }
}
