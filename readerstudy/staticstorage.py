"""Static files for production: whitenoise's compressed, content-hashed storage."""

from django.contrib.staticfiles.storage import HashedFilesMixin
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The vendored npm bundles end in `//# sourceMappingURL=...map` comments for source maps
    their packages do not ship; Django's default JS pattern would fail collectstatic on them.
    CSS references are still rewritten to hashed names."""

    patterns = tuple(
        (extension, rules) for extension, rules in HashedFilesMixin.patterns if extension != "*.js"
    )
