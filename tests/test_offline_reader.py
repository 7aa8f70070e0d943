"""chat/offline_reader.py: the reading without an LLM answers on the question's routed topics."""

from chat.offline_reader import compose_reading
from rag.passages import Passage, keyword_passages


def test_it_answers_on_the_routed_topic(poem):
    text = compose_reading("She left me. Will she come back?", poem, [], ["love"])
    assert text.startswith(f'You drew poem 1 of Jade Harbor Temple, "{poem.title}" (blessing).')
    assert poem.meaning in text
    assert text.endswith(f"On love: {poem.advice['love']}")


def test_two_routed_topics_give_both_advices_best_first(poem):
    text = compose_reading("Should I lend my brother money?", poem, [], ["wealth", "family"])
    assert text.index(f"On money: {poem.advice['wealth']}") < text.index(f"On family: {poem.advice['family']}")


def test_the_routed_topic_wins_over_a_passage_order_that_disagrees(poem):
    passages = [Passage(poem.id, "lost_items", poem.advice["lost_items"], 0.9)]
    text = compose_reading("Will my new shop do well?", poem, passages, ["career"])
    assert f"On work: {poem.advice['career']}" in text
    assert "On what was lost" not in text


def test_a_topic_the_poem_has_no_advice_on_is_left_out(poem):
    poem.advice = {"career": "Work steadily."}
    assert "On love" not in compose_reading("Does he love me?", poem, [], ["love", "career"])
    assert compose_reading("Does he love me?", poem, [], ["love"]).endswith(
        "Read the verse slowly and let it speak to the question you carry."
    )


def test_no_routed_topic_gives_the_general_reading(poem):
    assert "Read the verse slowly" in compose_reading("Hello?", poem, [], [])


def test_without_topics_it_still_reads_the_passages_order(poem):
    text = compose_reading("Will my new shop do well?", poem, keyword_passages("Will my new shop do well?", poem))
    assert f"On work: {poem.advice['career']}" in text
