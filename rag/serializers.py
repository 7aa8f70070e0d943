from rest_framework import serializers

from rag.models import Poem, Temple


class PoemSerializer(serializers.ModelSerializer):
    temple: serializers.SlugRelatedField[Temple] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    temple_name = serializers.CharField(source="temple.name", read_only=True)

    class Meta:
        model = Poem
        fields = [
            "id",
            "temple",
            "temple_name",
            "number",
            "title",
            "rank",
            "verse",
            "meaning",
            "language",
            "advice",
            "weight",
            "updated_at",
        ]
        read_only_fields = fields


class TempleFilterSerializer(serializers.Serializer):
    temple = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Temple.objects.all(),
        required=False,
        error_messages={"does_not_exist": "No temple with slug {value}."},
    )


class SearchSerializer(TempleFilterSerializer):
    q = serializers.CharField(min_length=1, max_length=2000, trim_whitespace=True)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)


class PassageSerializer(serializers.Serializer):
    poem = serializers.IntegerField()
    topic = serializers.CharField()
    text = serializers.CharField()
    score = serializers.SerializerMethodField()

    def get_score(self, passage) -> float:
        return round(passage.score, 4)
