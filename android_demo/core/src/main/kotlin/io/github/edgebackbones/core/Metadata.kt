package io.github.edgebackbones.core

/** The schema of the sidecar JSON `edge-backbones export` writes beside a model. */
const val METADATA_SCHEMA = "edge_backbones.tflite/1"

/** The schema of an artifact `edge-backbones compile` compiled ahead of time for an NPU. */
const val METADATA_SCHEMA_COMPILED = "edge_backbones.tflite/2"

/** Every schema the exporter writes; the app reads them all. */
val METADATA_SCHEMAS = listOf(METADATA_SCHEMA, METADATA_SCHEMA_COMPILED)

/** The SignatureDef every exported model has; inputs and outputs are bound by name in it. */
const val SIGNATURE_KEY = "serving_default"

/**
 * Element types the exporter writes, by their numpy names (the schema's dtype
 * enum). [bindable]: LiteRT 2.3's Kotlin `TensorBuffer` reads and writes it
 * (float32; int8 and uint8 as bytes); int16 (the npu target's I/O) and
 * float16 it cannot, so such an artifact parses and says why it cannot run.
 */
enum class DType(val jsonName: String, val byteSize: Int, val min: Int, val max: Int, val bindable: Boolean) {
    FLOAT32("float32", 4, 0, 0, true),
    FLOAT16("float16", 2, 0, 0, false),
    INT8("int8", 1, -128, 127, true),
    UINT8("uint8", 1, 0, 255, true),
    INT16("int16", 2, -32768, 32767, false);

    val isInteger get() = this == INT8 || this == UINT8 || this == INT16

    companion object {
        fun of(name: String, where: String): DType =
            entries.firstOrNull { it.jsonName == name } ?: throw MetadataException(
                "$where has dtype \"$name\"; the artifact schema has ${entries.map { it.jsonName }}. " +
                    "Export the model again with edge_backbones.",
            )
    }
}

/** Why the app cannot bind one tensor of an otherwise valid artifact. */
data class BindingProblem(val tensor: String, val dtype: DType) {
    val message
        get() = "Tensor \"$tensor\" is ${dtype.jsonName}, which LiteRT's Kotlin TensorBuffer cannot " +
            "read or write, so this app cannot run the artifact (it reads its metadata). On a phone, " +
            "use a float32, int8 or uint8 artifact (targets cpu, gpu, npu_int8); the npu target's " +
            "int16 I/O runs through LiteRT's C++ API."
}

/** What an ahead-of-time NPU compile recorded (schema [METADATA_SCHEMA_COMPILED]). */
data class CompiledInfo(val soc: String, val vendor: String, val accelerator: String)

/** What the graph computes beyond (or instead of) the pyramid levels. */
data class TaskInfo(val kind: String, val classNames: List<String>?, val numClasses: Int?)

/** Affine quantization: real = (q - zeroPoint) * scale. */
data class Quantization(val scale: Float, val zeroPoint: Int)

enum class ResizePolicy(val jsonName: String) { STRETCH("stretch"), LONGEST_SIDE_PAD("longest_side_pad") }

/** OpenCV interpolations :core reproduces bit-exactly; area and cubic are refused. */
enum class Interpolation(val jsonName: String) { LINEAR("linear"), NEAREST("nearest") }

/** How 0-255 RGB pixels become the model's input (runtime/preprocess.py). */
data class Preprocessing(
    val bgr: Boolean = false,
    val resize: ResizePolicy = ResizePolicy.STRETCH,
    val interpolation: Interpolation = Interpolation.LINEAR,
    val pixelsInGraph: Boolean = false,
    val scale: Double = 1.0 / 255.0,
    val mean: List<Double> = listOf(0.0, 0.0, 0.0),
    val std: List<Double> = listOf(1.0, 1.0, 1.0),
)

/** The model's one input as its SignatureDef names it. */
data class InputInfo(
    val name: String,
    val shape: List<Int>,
    val dtype: DType,
    val quantization: Quantization?,
) {
    val height get() = shape[1]
    val width get() = shape[2]
}

/** One pyramid level: a SignatureDef output, by name. */
data class LevelInfo(
    val name: String,
    val shape: List<Int>,
    val dtype: DType,
    val quantization: Quantization?,
    val stride: Int?,
    val channels: Int?,
) {
    val elementCount get() = shape.fold(1) { a, b -> a * b }
}

/** What the app needs from the sidecar; [raw] keeps the rest (fidelity, model, ...). */
data class ModelMetadata(
    val modelName: String,
    val mode: String,
    val input: InputInfo,
    val preprocessing: Preprocessing,
    val levels: List<LevelInfo>,
    val raw: Map<String, Any?>,
    val schema: String = METADATA_SCHEMA,
    val compiled: CompiledInfo? = null,
    val task: TaskInfo? = null,
) {
    fun level(name: String): LevelInfo = levels.firstOrNull { it.name == name }
        ?: throw InputException(
            "No level \"$name\" in $modelName ($mode); its levels are ${levels.map { it.name }}.",
        )

    /** The first tensor LiteRT's Kotlin API cannot bind, or null when the app can run it. */
    val bindingProblem: BindingProblem?
        get() = (listOf(input.name to input.dtype) + levels.map { it.name to it.dtype })
            .firstOrNull { !it.second.bindable }?.let { BindingProblem(it.first, it.second) }

    /** Throws [UnbindableTensorException] for an artifact the app can read but not run. */
    fun requireBindable() {
        bindingProblem?.let { throw UnbindableTensorException(it) }
    }

    companion object {
        /** Validates [jsonText] against the artifact schema, then reads it. */
        fun parse(jsonText: String, schema: ArtifactSchema = ArtifactSchema.bundled): ModelMetadata {
            val json = Json.parse(jsonText)
            schema.validate(json)
            return fromJson(json)
        }

        /** Reads an already parsed sidecar; [parse] also checks it against the schema. */
        fun fromJson(json: Any?): ModelMetadata {
            val root = json.asObject("the sidecar")
            val schema = root["schema"]
            if (schema !in METADATA_SCHEMAS) {
                throw MetadataException(
                    "The sidecar has schema ${quote(schema)}; this app reads $METADATA_SCHEMAS. " +
                        "Export the model again with edge_backbones, or update the app.",
                )
            }
            val input = root.field("input").asObject("input")
            val outputs = root.field("outputs").asObject("outputs")
            if (outputs.isEmpty()) {
                throw MetadataException("The sidecar lists no outputs; export the model again.")
            }
            val model = root["model"] as? Map<*, *>
            return ModelMetadata(
                modelName = (model?.get("name") as? String) ?: "unknown model",
                mode = root.field("mode").asString("mode"),
                input = InputInfo(
                    name = input.field("name").asString("input.name"),
                    shape = shapeOf(input.field("shape"), "input.shape", rank = 4),
                    dtype = DType.of(input.field("dtype").asString("input.dtype"), "input"),
                    quantization = quantizationOf(input["quantization"], "input"),
                ),
                preprocessing = preprocessingOf(input["preprocessing"]),
                levels = outputs.map { (name, spec) -> levelOf(name, spec) },
                raw = root,
                schema = schema as String,
                compiled = compiledOf(root),
                task = taskOf(root["task"]),
            )
        }

        private fun compiledOf(root: Map<String, Any?>): CompiledInfo? {
            if (root["schema"] != METADATA_SCHEMA_COMPILED) return null
            val block = root.field("compiled").asObject("compiled")
            return CompiledInfo(
                soc = block.field("soc").asString("compiled.soc"),
                vendor = block.field("vendor").asString("compiled.vendor"),
                accelerator = block.field("accelerator").asString("compiled.accelerator"),
            )
        }

        private fun taskOf(value: Any?): TaskInfo? {
            if (value == null) return null
            val task = value.asObject("task")
            return TaskInfo(
                kind = task.field("kind").asString("task.kind"),
                classNames = (task["class_names"] as? List<*>)?.map { it.asString("task.class_names") },
                numClasses = task["num_classes"]?.asNumber("task.num_classes")?.toInt(),
            )
        }

        private fun levelOf(name: String, spec: Any?): LevelInfo {
            val level = spec.asObject("outputs.$name")
            return LevelInfo(
                name = name,
                // a segmenter's class map is (1, H, W); every other output is NHWC
                shape = shapeOf(level.field("shape"), "outputs.$name.shape", rank = if (name == "classes") 3 else 4),
                dtype = DType.of(level.field("dtype").asString("outputs.$name.dtype"), "output $name"),
                quantization = quantizationOf(level["quantization"], "output $name"),
                stride = (level["stride"] as? Number)?.toInt(),
                channels = (level["channels"] as? Number)?.toInt(),
            )
        }

        private fun quantizationOf(value: Any?, where: String): Quantization? {
            if (value == null) return null
            val q = value.asObject("$where quantization")
            val scale = q.field("scale").asNumber("$where quantization.scale").toDouble()
            if (!(scale > 0.0)) {
                throw MetadataException(
                    "$where has quantization scale $scale; it must be positive. Export again.",
                )
            }
            return Quantization(
                scale.toFloat(),
                q.field("zero_point").asNumber("$where quantization.zero_point").toInt(),
            )
        }

        private fun preprocessingOf(value: Any?): Preprocessing {
            if (value == null) {
                throw MetadataException(
                    "The sidecar has no input.preprocessing, so the model's normalization " +
                        "is unknown. Export the model with edge_backbones (it always writes it).",
                )
            }
            val spec = value.asObject("input.preprocessing")
            val known = setOf(
                "color_order", "resize", "interpolation", "pixels_in_graph", "scale", "mean", "std",
            )
            val unknown = spec.keys - known
            if (unknown.isNotEmpty()) {
                throw MetadataException(
                    "Unknown preprocessing key(s) ${unknown.sorted()}; the keys are $known.",
                )
            }
            val defaults = Preprocessing()
            val color = spec["color_order"] ?: "RGB"
            if (color != "RGB" && color != "BGR") {
                throw MetadataException("Preprocessing color_order=${quote(color)}; use \"RGB\" or \"BGR\".")
            }
            return Preprocessing(
                bgr = color == "BGR",
                resize = enumOf(spec["resize"], ResizePolicy.entries, { it.jsonName }, "resize")
                    ?: defaults.resize,
                interpolation = enumOf(
                    spec["interpolation"], Interpolation.entries, { it.jsonName }, "interpolation",
                ) ?: defaults.interpolation,
                pixelsInGraph = (spec["pixels_in_graph"] ?: false) as? Boolean ?: throw MetadataException(
                    "Preprocessing pixels_in_graph must be true or false; got ${quote(spec["pixels_in_graph"])}.",
                ),
                scale = spec["scale"]?.asNumber("preprocessing.scale")?.toDouble() ?: defaults.scale,
                mean = triple(spec["mean"], "mean") ?: defaults.mean,
                std = (triple(spec["std"], "std") ?: defaults.std).also { std ->
                    if (std.any { it == 0.0 }) {
                        throw MetadataException("Preprocessing std has a zero ($std); export again.")
                    }
                },
            )
        }

        private fun <T> enumOf(value: Any?, options: List<T>, name: (T) -> String, key: String): T? {
            if (value == null) return null
            return options.firstOrNull { name(it) == value } ?: throw MetadataException(
                "Preprocessing $key=${quote(value)} is not supported by this app; it reproduces " +
                    "${options.map(name)} exactly. Export with one of those.",
            )
        }

        private fun triple(value: Any?, key: String): List<Double>? {
            if (value == null) return null
            val list = value as? List<*>
            if (list == null || list.size != 3 || list.any { it !is Number }) {
                throw MetadataException("Preprocessing $key must be 3 numbers; got ${quote(value)}.")
            }
            return list.map { (it as Number).toDouble() }
        }

        private fun shapeOf(value: Any?, where: String, rank: Int): List<Int> {
            val list = value as? List<*>
            if (list == null || list.size != rank || list.any { it !is Long || it <= 0 }) {
                throw MetadataException(
                    "$where is ${quote(value)}; expected $rank positive integers (NHWC). Export again.",
                )
            }
            return list.map { (it as Long).toInt() }
        }
    }
}

internal fun quote(value: Any?): String = if (value is String) "\"$value\"" else value.toString()

internal fun Any?.asObject(where: String): Map<String, Any?> {
    if (this !is Map<*, *>) {
        throw MetadataException("$where must be a JSON object; got ${quote(this)}. Export the model again.")
    }
    @Suppress("UNCHECKED_CAST")
    return this as Map<String, Any?>
}

internal fun Map<String, Any?>.field(key: String): Any? {
    if (!containsKey(key)) {
        throw MetadataException(
            "The sidecar has no \"$key\" (keys: ${keys.toList()}). Export the model again with edge_backbones.",
        )
    }
    return this[key]
}

internal fun Any?.asString(where: String): String =
    this as? String ?: throw MetadataException("$where must be a string; got ${quote(this)}.")

internal fun Any?.asNumber(where: String): Number =
    this as? Number ?: throw MetadataException("$where must be a number; got ${quote(this)}.")
