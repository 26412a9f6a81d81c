package io.github.edgebackbones.core

/**
 * The artifact contract: `edge_backbones/core/artifact.schema.json`, the one
 * JSON Schema the Python exporter validates every sidecar against, bundled as
 * a resource (core/build.gradle.kts) and checked here with the same keyword
 * subset as `edge_backbones/core/json_schema.py`: type, properties, required,
 * additionalProperties, enum, const, items, minItems, maxItems, minimum,
 * maximum, exclusiveMinimum, minLength, `$ref` into `$defs`, anyOf, oneOf.
 * A keyword outside the subset is refused when the schema loads, so none is
 * silently ignored.
 */
class ArtifactSchema(val document: Map<String, Any?>) {
    /** The schema file's version: the last segment of its `$id`. */
    val version: Int = (document["\$id"] as? String)?.substringAfterLast('/')?.toIntOrNull()
        ?: throw MetadataException("The artifact schema has no versioned \$id; bundle the file edge_backbones ships.")

    init {
        checkSchema(document, "#")
    }

    /** (JSON path, problem) for every place [instance] breaks the schema; empty if none. */
    fun errors(instance: Any?): List<Pair<String, String>> = errors(instance, document, "$")

    /** Throws [ArtifactSchemaException] naming the first field that breaks the schema. */
    fun validate(instance: Any?, where: String = "The sidecar") {
        val problems = errors(instance)
        if (problems.isEmpty()) return
        val (field, problem) = problems.first()
        val more = if (problems.size > 1) {
            " (also: " + problems.drop(1).take(3).joinToString("; ") { "${it.first} ${it.second}" } +
                (if (problems.size > 4) "; ..." else "") + ")"
        } else {
            ""
        }
        throw ArtifactSchemaException(
            "$where breaks the artifact schema (version $version, $SCHEMA_FILE) at $field: $problem$more. " +
                "Export the model again with edge_backbones, or update the app.",
            field,
            version,
        )
    }

    private fun errors(instance: Any?, schema: Any?, path: String): List<Pair<String, String>> {
        if (schema == true) return emptyList()
        if (schema == false) return listOf(path to "is not allowed here")
        val s = schema.asObject("the artifact schema")
        (s["\$ref"] as? String)?.let { ref ->
            val found = errors(instance, resolve(ref), path)
            if (found.isNotEmpty()) return found
        }
        s["type"]?.let { type ->
            if (!isType(instance, type)) {
                return listOf(path to "must be ${typeText(type)}; got ${jsonName(instance)} ${short(instance)}")
            }
        }
        if (s.containsKey("const") && !jsonEquals(instance, s["const"])) {
            return listOf(path to "must be ${short(s["const"])}; got ${short(instance)}")
        }
        (s["enum"] as? List<*>)?.let { options ->
            if (options.none { jsonEquals(instance, it) }) {
                return listOf(path to "must be one of $options; got ${short(instance)}")
            }
        }
        val found = mutableListOf<Pair<String, String>>()
        if (instance is Map<*, *>) found += objectErrors(instance, s, path)
        if (instance is List<*>) found += arrayErrors(instance, s, path)
        if (isNumber(instance)) found += numberErrors((instance as Number).toDouble(), s, path)
        if (instance is String) {
            val min = (s["minLength"] as? Number)?.toInt() ?: 0
            if (instance.length < min) found += path to "must have at least $min characters"
        }
        (s["anyOf"] as? List<*>)?.let { schemas ->
            val branches = schemas.map { errors(instance, it, path) }
            if (branches.all { it.isNotEmpty() }) found += noBranch("anyOf", schemas, branches, instance)
        }
        (s["oneOf"] as? List<*>)?.let { schemas ->
            val branches = schemas.map { errors(instance, it, path) }
            val passed = branches.count { it.isEmpty() }
            if (passed == 0) found += noBranch("oneOf", schemas, branches, instance)
            if (passed > 1) found += path to "matches $passed of oneOf's branches"
        }
        return found
    }

    private fun objectErrors(instance: Map<*, *>, s: Map<String, Any?>, path: String): List<Pair<String, String>> {
        val found = mutableListOf<Pair<String, String>>()
        val properties = (s["properties"] as? Map<*, *>) ?: emptyMap<String, Any?>()
        for (key in (s["required"] as? List<*>).orEmpty()) {
            if (!instance.containsKey(key)) {
                found += "$path.$key" to "missing: no \"$key\" ${kind(properties[key])}, which is required"
            }
        }
        val extra = s["additionalProperties"] ?: true
        for ((key, value) in instance) {
            when {
                properties.containsKey(key) -> found += errors(value, properties[key], "$path.$key")
                extra == false -> found += "$path.$key" to "is not a field of this object"
                extra != true -> found += errors(value, extra, "$path.$key")
            }
        }
        return found
    }

    private fun arrayErrors(instance: List<*>, s: Map<String, Any?>, path: String): List<Pair<String, String>> {
        val found = mutableListOf<Pair<String, String>>()
        (s["minItems"] as? Number)?.toInt()?.let { if (instance.size < it) found += path to "must have at least $it items" }
        (s["maxItems"] as? Number)?.toInt()?.let { if (instance.size > it) found += path to "must have at most $it items" }
        if (s.containsKey("items")) {
            instance.forEachIndexed { i, item -> found += errors(item, s["items"], "$path[$i]") }
        }
        return found
    }

    private fun numberErrors(value: Double, s: Map<String, Any?>, path: String): List<Pair<String, String>> {
        val found = mutableListOf<Pair<String, String>>()
        (s["minimum"] as? Number)?.let { if (value < it.toDouble()) found += path to "must be >= $it; got $value" }
        (s["maximum"] as? Number)?.let { if (value > it.toDouble()) found += path to "must be <= $it; got $value" }
        (s["exclusiveMinimum"] as? Number)?.let { if (value <= it.toDouble()) found += path to "must be > $it; got $value" }
        return found
    }

    // the branch about this kind of object (its const/enum properties match)
    // explains best, then the one with the fewest problems; on a tie the later
    private fun noBranch(
        keyword: String,
        schemas: List<*>,
        branches: List<List<Pair<String, String>>>,
        instance: Any?,
    ): Pair<String, String> {
        val best = branches.indices.minWith(
            compareBy<Int>({ !selects(schemas[it], instance) }, { branches[it].size }, { -it }),
        )
        val (where, problem) = branches[best].first()
        return where to "$problem (no branch of $keyword matches)"
    }

    private fun selects(schema: Any?, instance: Any?): Boolean {
        if (instance !is Map<*, *> || schema !is Map<*, *>) return false
        for ((key, sub) in (schema["properties"] as? Map<*, *>).orEmpty()) {
            if (sub !is Map<*, *> || !instance.containsKey(key)) continue
            if (sub.containsKey("const") && !jsonEquals(instance[key], sub["const"])) return false
            val options = sub["enum"] as? List<*>
            if (options != null && options.none { jsonEquals(instance[key], it) }) return false
        }
        return true
    }

    private fun kind(schema: Any?): String {
        var s = schema
        while (s is Map<*, *> && s["\$ref"] is String) s = resolve(s["\$ref"] as String)
        return ((s as? Map<*, *>)?.get("type") as? String) ?: "field"
    }

    private fun resolve(ref: String): Any? {
        if (!ref.startsWith("#/")) throw MetadataException("\$ref $ref: only references into the schema itself")
        var node: Any? = document
        for (part in ref.removePrefix("#/").split('/')) node = (node as? Map<*, *>)?.get(part)
        return node ?: throw MetadataException("\$ref $ref points nowhere in the artifact schema")
    }

    companion object {
        const val SCHEMA_FILE = "artifact.schema.json"

        val KEYWORDS = setOf(
            "\$schema", "\$id", "\$comment", "title", "description", "\$defs",
            "type", "properties", "required", "additionalProperties", "enum", "const", "items",
            "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "minLength", "\$ref",
            "anyOf", "oneOf",
        )

        /** The schema bundled with :core (a classpath resource). */
        val bundled: ArtifactSchema by lazy {
            val stream = ArtifactSchema::class.java.getResourceAsStream("/$SCHEMA_FILE")
                ?: throw MetadataException(
                    "$SCHEMA_FILE is not on the classpath; :core bundles it from edge_backbones/core " +
                        "(core/build.gradle.kts). Build the app from the repository.",
                )
            parse(stream.use { it.readBytes().decodeToString() })
        }

        fun parse(text: String) = ArtifactSchema(Json.parse(text).asObject("the artifact schema"))

        private fun checkSchema(schema: Any?, path: String) {
            if (schema is Boolean) return
            val s = schema.asObject("the artifact schema at $path")
            val unknown = s.keys - KEYWORDS
            if (unknown.isNotEmpty()) {
                throw MetadataException("The artifact schema at $path uses ${unknown.sorted()}, which :core does not enforce.")
            }
            for (key in listOf("properties", "\$defs")) {
                (s[key] as? Map<*, *>)?.forEach { (name, sub) -> checkSchema(sub, "$path/$key/$name") }
            }
            for (key in listOf("items", "additionalProperties")) if (s.containsKey(key)) checkSchema(s[key], "$path/$key")
            for (key in listOf("anyOf", "oneOf")) {
                (s[key] as? List<*>)?.forEachIndexed { i, sub -> checkSchema(sub, "$path/$key/$i") }
            }
        }

        private fun isNumber(v: Any?) = v is Long || v is Double || v is Int

        private fun isType(v: Any?, type: Any?): Boolean = when (type) {
            is List<*> -> type.any { isType(v, it) }
            "object" -> v is Map<*, *>
            "array" -> v is List<*>
            "string" -> v is String
            "boolean" -> v is Boolean
            "null" -> v == null
            "number" -> isNumber(v)
            // as the standard: 2.0 is an integer
            "integer" -> v is Long || v is Int || (v is Double && v == Math.rint(v) && !v.isInfinite())
            else -> throw MetadataException("The artifact schema names an unknown type ${quote(type)}.")
        }

        private fun jsonEquals(a: Any?, b: Any?): Boolean = when {
            isNumber(a) && isNumber(b) -> (a as Number).toDouble() == (b as Number).toDouble()
            a is Map<*, *> && b is Map<*, *> -> a.keys == b.keys && a.keys.all { jsonEquals(a[it], b[it]) }
            a is List<*> && b is List<*> -> a.size == b.size && a.indices.all { jsonEquals(a[it], b[it]) }
            else -> a == b
        }

        private fun typeText(type: Any?) = if (type is List<*>) type.joinToString(" or ") else type.toString()

        private fun jsonName(v: Any?) = when (v) {
            null -> "null"
            is Boolean -> "boolean"
            is Long, is Int -> "integer"
            is Double -> "number"
            is String -> "string"
            is List<*> -> "array"
            is Map<*, *> -> "object"
            else -> v::class.simpleName ?: "value"
        }

        private fun short(v: Any?): String {
            val text = quote(v)
            return if (text.length <= 60) text else text.take(57) + "..."
        }
    }
}
