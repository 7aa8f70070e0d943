from django.db import models

TOPICS = (
    "career",
    "love",
    "family",
    "health",
    "wealth",
    "travel",
    "study",
    "lost_items",
    "disputes",
)
LANGUAGES = (("en", "English"), ("zh", "Chinese"), ("ja", "Japanese"))


class Temple(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Poem(models.Model):
    """A fortune poem. The database is the source of truth; ChromaDB only indexes it."""

    temple = models.ForeignKey(Temple, on_delete=models.CASCADE, related_name="poems")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    rank = models.CharField(max_length=64, help_text="Free text, e.g. great blessing")
    verse = models.TextField()
    meaning = models.TextField()
    language = models.CharField(max_length=2, choices=LANGUAGES, default="en")
    advice = models.JSONField(default=dict, help_text="Advice text per topic")
    weight = models.PositiveIntegerField(default=1, help_text="Relative chance of being drawn")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["temple__slug", "number"]
        constraints = [models.UniqueConstraint(fields=["temple", "number"], name="poem_unique_number")]

    def __str__(self) -> str:
        return f"{self.temple.slug} #{self.number} {self.title}"
