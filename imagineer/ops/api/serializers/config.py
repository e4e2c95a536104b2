"""Shapes of the runtime config API: the cache's stats and why a file was refused."""

from rest_framework import serializers


class ConfigErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.CharField(), help_text="Bad key → reason.")


class ConfigCacheSerializer(serializers.Serializer):
    cached = serializers.BooleanField()
    loaded_at = serializers.DateTimeField(allow_null=True)
    source = serializers.ChoiceField(choices=["file", "defaults"], help_text="Where the config in force came from.")
    cached_mtime = serializers.DateTimeField(
        allow_null=True, help_text="mtime of the file the config in force came from."
    )
    file_exists = serializers.BooleanField()
    file_mtime = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField(help_text="The file on disk is not the one in force (changed, or rejected).")
    last_error = ConfigErrorSerializer(allow_null=True, help_text="Why the file on disk was refused, if it was.")
