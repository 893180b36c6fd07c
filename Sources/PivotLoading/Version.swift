/// pivot's version, recorded in files it writes.
public let pivotVersion = "0.1.0"
