"""Phone: phone.count_texts_from (texts a contact sent me this month); phone.text_contact (send a text)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..people import Supervisor, password, person
from ..task import TaskSpec, Template, all_pages, indent, login_code

RELATIONSHIPS = ["friend", "coworker", "roommate", "cousin", "manager", "neighbor", "classmate"]  # gender-neutral
TEXTS = ["Are we still on for tonight?", "Running 10 minutes late, sorry!", "Can you call me when you're free?",
         "Happy Friday!", "Did you see the game last night?", "Thanks again for yesterday.", "On my way.",
         "Lunch tomorrow?", "Just landed, will text later.", "Don't forget the keys.", "Sounds good to me.",
         "Let me check and get back to you.", "Got the tickets!", "How was the trip?", "See you at 7."]
LOGIN = login_code("phone", username='profile["phone_number"]')


def _add_contacts(models: Any, sup: Supervisor, rng: random.Random, n: int) -> tuple[Any, list[Any]]:
    """The supervisor's phone account and `n` contacts, each with a phone account of their own."""
    me = sup.open_account("phone")
    contacts, names = [], {sup.person.name}
    while len(contacts) < n:
        p = person(rng)
        if p.name in names:
            continue
        names.add(p.name)
        user = models.phone.User(first_name=p.first_name, last_name=p.last_name, phone_number=p.phone_number,
                                 password=password(rng),
                                 created_at=datetime(2021, 5, 1) + timedelta(days=rng.randrange(300)),
                                 last_logged_in=datetime(2023, 5, 1) + timedelta(days=rng.randrange(15)))
        user.save()
        models.phone.Contact(user_id=me.id, first_name=p.first_name, last_name=p.last_name, email=p.email,
                             phone_number=p.phone_number, relationships=[rng.choice(RELATIONSHIPS)],
                             birthday=p.birthday,
                             created_at=datetime(2022, 1, 10) + timedelta(days=rng.randrange(200))).save()
        contacts.append(user)
    return me, contacts


def _text(models: Any, rng: random.Random, sender: Any, receiver: Any, when: datetime) -> Any:
    message = models.phone.GlobalTextMessage(sender_id=sender.id, receiver_id=receiver.id,
                                             message=rng.choice(TEXTS), created_at=when)
    message.save()
    for owner in (sender, receiver):
        models.phone.UserTextMessage(global_text_message_id=message.id, user_id=owner.id, created_at=when).save()
    return message


def _relationship(models: Any, me: Any, user: Any) -> str:
    return models.phone.Contact.find_one(user_id=me.id, phone_number=user.phone_number).relationships[0]


FIND_CONTACT = all_pages(
    "contacts", "apis.phone.search_contacts(access_token=token, page_index=page, page_limit=20)") + """
    contact = next(c for c in contacts if c["first_name"] + " " + c["last_name"] == "{name}")
"""

COUNT_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the number of texts the contact sent me in May 2023.
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert no contact or message was added, removed or changed.
        """):
        test.case(models.changed_model_names(ignore=["phone.User"]), "==", set())
'''


def count_texts_from(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    me, contacts = _add_contacts(models, sup, rng, rng.randint(3, 7))
    target = contacts[0]
    messages = []
    for _ in range(rng.randint(20, 60)):
        other = target if rng.random() < 0.5 else rng.choice(contacts)
        when = datetime(2023, 3, 15) + timedelta(days=rng.randrange(63), minutes=rng.randrange(1440))
        sender, receiver = (other, me) if rng.random() < 0.55 else (me, other)
        messages.append(_text(models, rng, sender, receiver, when))
    answer = sum(m.sender_id == target.id and m.created_at >= datetime(2023, 5, 1) for m in messages)
    solution = ("def solution(apis, requester):\n" + indent(LOGIN)
                + FIND_CONTACT.replace("{name}", target.name) + indent("""\
        messages, page = [], 0
        while True:
            batch = apis.phone.search_text_messages(access_token=token, phone_number=contact["phone_number"],
                                                    page_index=page, page_limit=20)
            if not batch:
                break
            messages += batch
            page += 1
        count = sum(m["sender"]["phone_number"] == contact["phone_number"] and m["sent_at"] >= "2023-05-01"
                    for m in messages)
        apis.supervisor.complete_task(answer=count)
    """))
    return TaskSpec(
        instruction=f"How many text messages has my {_relationship(models, me, target)} {target.name} sent me "
                    f"this month?",
        solution=solution, evaluation=COUNT_EVALUATION, answer=answer,
        public_data={"contact_phone_number": target.phone_number})


SEND_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    added, updated, removed = models.changed_records("phone.GlobalTextMessage")
    with test("""
        assert exactly one text message was sent, from me to the contact, with the given content.
        """):
        test.case(len(added) + len(updated) + len(removed), "==", 1)
        test.case(len(added), "==", 1)
        test.case(added[0].sender_id, "==", private_data.sender_id)
        test.case(added[0].receiver_id, "==", private_data.receiver_id)
        test.case(added[0].message.strip(), "==", private_data.message)
    with test("""
        assert no contact, alarm or voice message was added, removed or changed.
        """):
        ignore = ["phone.User", "phone.GlobalTextMessage", "phone.UserTextMessage"]
        test.case(models.changed_model_names(ignore=ignore), "==", set())
'''


def text_contact(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    me, contacts = _add_contacts(models, sup, rng, rng.randint(3, 25))
    for _ in range(rng.randint(3, 15)):
        other = rng.choice(contacts)
        when = datetime(2023, 4, 1) + timedelta(days=rng.randrange(45), minutes=rng.randrange(1440))
        _text(models, rng, *((other, me) if rng.random() < 0.5 else (me, other)), when)
    target = rng.choice(contacts)
    message = rng.choice(TEXTS)
    solution = ("def solution(apis, requester):\n" + indent(LOGIN)
                + FIND_CONTACT.replace("{name}", target.name) + indent(f"""\
        apis.phone.send_text_message(access_token=token, phone_number=contact["phone_number"], message={message!r})
        apis.supervisor.complete_task()
    """))
    return TaskSpec(
        instruction=f"Text my {_relationship(models, me, target)} {target.name} \"{message}\" from my phone.",
        solution=solution, evaluation=SEND_EVALUATION, answer=None, public_data={"message": message},
        private_data={"sender_id": me.id, "receiver_id": target.id, "message": message})


TEMPLATES = [
    Template("phone.count_texts_from", ("phone",), count_texts_from),
    Template("phone.text_contact", ("phone",), text_contact),
]
