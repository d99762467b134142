from django.apps import AppConfig


class AdmissionsConfig(AppConfig):
    name = "breathecode.admissions"
    label = "admissions"
