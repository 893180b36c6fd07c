import Foundation
import PivotDiffusion

extension ModelFolder {
    /// `scheduler/scheduler_config.json` (SD 1.5's DDIM settings when the folder has none).
    public func schedulerConfig() throws -> SchedulerConfig {
        if let single {
            var config: SchedulerConfig
            if let configDirectory {
                config = try ModelFolder(path: configDirectory).schedulerConfig()
            } else {
                config = try SchedulerConfig(
                    json: builtinConfig("scheduler", family: single.family),
                    file: "pivot's built-in \(single.family.rawValue) scheduler config")
            }
            if let predictionType { config = config.overriding(predictionType: predictionType) }
            return config
        }
        let file = display("scheduler/scheduler_config.json")
        guard FileManager.default.fileExists(atPath: file) else { return .stableDiffusion }
        guard let data = FileManager.default.contents(atPath: file) else { throw LoadError.unreadable(file, reason: "cannot read") }
        return try SchedulerConfig(json: data, file: file)
    }
}
