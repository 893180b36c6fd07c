// PivotIO owns atomic file replacement and one-line messages: `SettingsNamingError`, so that library errors name
// settings by key and each front end spells them.
//
// It must not depend on any other pivot module.
