package io.github.edgebackbones.core


/** Bytes or floats exactly as a tensor buffer holds them (LiteRT's readInt8/readFloat). */
sealed class RawTensor {
    abstract val size: Int

    class Floats(val values: FloatArray) : RawTensor() {
        override val size get() = values.size
    }

    /** int8 or uint8 elements; which one is the tensor's dtype's business. */
    class Bytes(val values: ByteArray) : RawTensor() {
        override val size get() = values.size
    }
}

/** A dequantized pyramid level: float32 values in NHWC order. */
class FeatureMap(val name: String, val shape: List<Int>, val values: FloatArray) {
    val height get() = shape[1]
    val width get() = shape[2]
    val channels get() = shape[3]
}

/** Quantizing the input and dequantizing outputs as `EdgeModel` does (float32 arithmetic). */
object Tensors {
    /**
     * The tensor the model's input takes, from [ModelInput]: `EdgeModel._to_input`.
     * Same dtype: passed through. Float (or pixels for a pixels-in-graph model) into
     * an integer tensor: `clip(rint(x / scale + zero_point))`.
     */
    fun toInputTensor(input: ModelInput, spec: InputInfo, pixelsInGraph: Boolean): RawTensor {
        if (!spec.dtype.bindable) throw UnbindableTensorException(BindingProblem(spec.name, spec.dtype))
        if (input.height != spec.height || input.width != spec.width) {
            throw InputException(
                "Input of ${input.height}x${input.width}; the model takes ${spec.height}x${spec.width}. " +
                    "Preprocess with the model's own metadata.",
            )
        }
        return when (input) {
            is ModelInput.Pixels -> when {
                spec.dtype == DType.UINT8 -> RawTensor.Bytes(input.values)
                !pixelsInGraph -> throw InputException(
                    "uint8 pixels given, but ${spec.name} takes normalized ${spec.dtype.jsonName} " +
                        "values (pixels_in_graph is false). Preprocess with the model's metadata.",
                )
                spec.dtype == DType.FLOAT32 ->
                    RawTensor.Floats(FloatArray(input.values.size) { (input.values[it].toInt() and 0xFF).toFloat() })
                else -> quantize(FloatArray(input.values.size) { (input.values[it].toInt() and 0xFF).toFloat() }, spec)
            }
            is ModelInput.Floats ->
                if (spec.dtype == DType.FLOAT32) RawTensor.Floats(input.values) else quantize(input.values, spec)
        }
    }

    fun quantize(values: FloatArray, spec: InputInfo): RawTensor.Bytes {
        val q = spec.quantization ?: throw MetadataException(
            "Input ${spec.name} is ${spec.dtype.jsonName} but has no quantization parameters in the " +
                "metadata. Export the model again.",
        )
        val zeroPoint = q.zeroPoint.toFloat()
        return RawTensor.Bytes(
            ByteArray(values.size) {
                val v = Math.rint((values[it] / q.scale + zeroPoint).toDouble())
                v.coerceIn(spec.dtype.min.toDouble(), spec.dtype.max.toDouble()).toInt().toByte()
            },
        )
    }

    fun dequantize(raw: RawTensor, level: LevelInfo): FeatureMap {
        if (!level.dtype.bindable) throw UnbindableTensorException(BindingProblem(level.name, level.dtype))
        if (raw.size != level.elementCount) {
            throw InputException(
                "Output ${level.name} holds ${raw.size} values; its shape ${level.shape} needs " +
                    "${level.elementCount}. The bundled metadata belongs to another export.",
            )
        }
        val values = when (raw) {
            is RawTensor.Floats -> {
                if (level.dtype != DType.FLOAT32) throw typeMismatch(level, "float32")
                raw.values
            }
            is RawTensor.Bytes -> {
                if (!level.dtype.isInteger) throw typeMismatch(level, "8-bit")
                val q = level.quantization ?: throw MetadataException(
                    "Output ${level.name} is ${level.dtype.jsonName} without quantization parameters; " +
                        "export the model again.",
                )
                val zeroPoint = q.zeroPoint.toFloat()
                val unsigned = level.dtype == DType.UINT8
                FloatArray(raw.values.size) {
                    val b = raw.values[it].toInt()
                    ((if (unsigned) b and 0xFF else b).toFloat() - zeroPoint) * q.scale
                }
            }
        }
        return FeatureMap(level.name, level.shape, values)
    }

    private fun typeMismatch(level: LevelInfo, got: String) = InputException(
        "Output ${level.name} came back as $got data but the metadata says ${level.dtype.jsonName}. " +
            "The bundled sidecar belongs to another export of the model.",
    )

    /**
     * Outputs by SignatureDef name -> the pyramid in the metadata's level order.
     * Names, never positions: the converter reorders output tensors.
     */
    fun pyramid(outputs: Map<String, RawTensor>, metadata: ModelMetadata): List<FeatureMap> {
        val expected = metadata.levels.map { it.name }.toSet()
        if (outputs.keys != expected) {
            throw InputException(
                "The model returned outputs ${outputs.keys.sorted()} but its metadata lists " +
                    "${expected.sorted()}. Bundle the sidecar exported with this .tflite.",
            )
        }
        return metadata.levels.map { dequantize(outputs.getValue(it.name), it) }
    }
}
