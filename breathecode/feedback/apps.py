from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "breathecode.feedback"
    label = "feedback"
