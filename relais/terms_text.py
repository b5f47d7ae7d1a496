"""The first version of the terms of use, in the four languages, seeded by migration 0001.

Admins publish later versions from the admin pages; this text only has to be a sound start.
Paragraphs are separated by blank lines; the page renders them as paragraphs.
"""

VERSION_1 = {
    "en": (
        "Terms of use of the secure file-exchange service",
        """These terms form an agreement between you and the Registry about your use of this secure file-exchange service (the "Service"). By logging in, or by clicking "Access" on a link, you accept them. If you do not accept them, do not use the Service.

The Service lets the Registry and its partners exchange data securely in their daily work, as the law requires for clinical data, pathology data and other personal health data.

You are responsible for everything done under your account or with a link and password given to you. You agree to:

1. not try to get around, disturb or change the security of the Service;
2. keep your password to yourself, never send it by e-mail and never share it; a colleague who needs access asks the Registry for their own;
3. log out at the end of your session;
4. tell the Registry when your account is no longer needed, for example when you change jobs;
5. tell the Registry at once of any security incident or unauthorised use you notice;
6. only send files in the formats agreed with the Registry, free of viruses or other harmful content;
7. use the Service only to exchange data with the Registry, not to share data with others or as personal storage.

By sending files through the Service you allow the Registry to process the data they contain. Files are kept only as long as needed and then deleted.

The Registry may change these terms; the version in force is shown at login and on each link. These terms are governed by Belgian law.""",
    ),
    "fr": (
        "Conditions d'utilisation du service d'échange sécurisé de fichiers",
        """Ces conditions forment un accord entre vous et le Registre concernant votre utilisation de ce service d'échange sécurisé de fichiers (le « Service »). En vous connectant, ou en cliquant sur « Accéder » sur un lien, vous les acceptez. Si vous ne les acceptez pas, n'utilisez pas le Service.

Le Service permet au Registre et à ses partenaires d'échanger des données de manière sécurisée dans leur travail quotidien, comme la loi l'exige pour les données cliniques, les données d'anatomie pathologique et les autres données de santé à caractère personnel.

Vous êtes responsable de tout ce qui est fait avec votre compte ou avec un lien et un mot de passe qui vous ont été remis. Vous vous engagez à :

1. ne pas (essayer de) contourner, perturber ou modifier la sécurité du Service ;
2. garder votre mot de passe pour vous, ne jamais l'envoyer par e-mail ni le partager ; un collègue qui a besoin d'un accès demande le sien au Registre ;
3. vous déconnecter à la fin de votre session ;
4. avertir le Registre lorsque votre compte n'est plus nécessaire, par exemple lors d'un changement de fonction ;
5. avertir immédiatement le Registre de tout incident de sécurité ou de toute utilisation non autorisée que vous constatez ;
6. n'envoyer que des fichiers aux formats convenus avec le Registre, exempts de virus ou d'autre contenu nuisible ;
7. n'utiliser le Service que pour échanger des données avec le Registre, et non pour partager des données avec des tiers ou comme espace de stockage personnel.

En envoyant des fichiers par le Service, vous autorisez le Registre à traiter les données qu'ils contiennent. Les fichiers ne sont conservés que le temps nécessaire, puis supprimés.

Le Registre peut modifier ces conditions ; la version en vigueur est affichée à la connexion et sur chaque lien. Ces conditions sont régies par le droit belge.""",
    ),
    "nl": (
        "Gebruiksvoorwaarden van de dienst voor beveiligde bestandsuitwisseling",
        """Deze voorwaarden vormen een overeenkomst tussen u en het Register over uw gebruik van deze dienst voor beveiligde bestandsuitwisseling (de "Dienst"). Door in te loggen, of door op een link op "Toegang" te klikken, aanvaardt u ze. Aanvaardt u ze niet, gebruik de Dienst dan niet.

De Dienst laat het Register en zijn partners toe om in hun dagelijks werk gegevens veilig uit te wisselen, zoals de wet vereist voor klinische gegevens, gegevens van pathologische anatomie en andere persoonsgegevens over de gezondheid.

U bent verantwoordelijk voor alles wat met uw account of met een aan u gegeven link en wachtwoord gebeurt. U verbindt zich ertoe:

1. de beveiliging van de Dienst niet te (proberen te) omzeilen, te verstoren of te wijzigen;
2. uw wachtwoord voor uzelf te houden, het nooit per e-mail te versturen en nooit te delen; een collega die toegang nodig heeft, vraagt het Register om een eigen toegang;
3. af te melden aan het einde van uw sessie;
4. het Register te verwittigen wanneer uw account niet meer nodig is, bijvoorbeeld bij een andere functie;
5. het Register meteen te verwittigen van elk beveiligingsincident of onrechtmatig gebruik dat u vaststelt;
6. enkel bestanden te versturen in de formaten die met het Register zijn afgesproken, vrij van virussen of andere schadelijke inhoud;
7. de Dienst enkel te gebruiken om gegevens uit te wisselen met het Register, niet om gegevens met anderen te delen of als persoonlijke opslag.

Door bestanden via de Dienst te versturen, geeft u het Register het recht de gegevens erin te verwerken. Bestanden worden slechts zo lang als nodig bewaard en daarna verwijderd.

Het Register kan deze voorwaarden wijzigen; de geldende versie wordt getoond bij het aanmelden en op elke link. Op deze voorwaarden is het Belgisch recht van toepassing.""",
    ),
    "de": (
        "Nutzungsbedingungen des Dienstes für den sicheren Dateiaustausch",
        """Diese Bedingungen sind eine Vereinbarung zwischen Ihnen und dem Register über Ihre Nutzung dieses Dienstes für den sicheren Dateiaustausch (der „Dienst"). Mit der Anmeldung oder mit einem Klick auf „Zugang" bei einem Link nehmen Sie sie an. Wenn Sie sie nicht annehmen, nutzen Sie den Dienst bitte nicht.

Der Dienst ermöglicht dem Register und seinen Partnern, in ihrer täglichen Arbeit Daten sicher auszutauschen, wie es das Gesetz für klinische Daten, pathologische Daten und andere personenbezogene Gesundheitsdaten verlangt.

Sie sind für alles verantwortlich, was mit Ihrem Konto oder mit einem Ihnen übergebenen Link und Passwort geschieht. Sie verpflichten sich:

1. die Sicherheit des Dienstes nicht zu umgehen, zu stören oder zu verändern (und es auch nicht zu versuchen);
2. Ihr Passwort für sich zu behalten, es nie per E-Mail zu senden und nie weiterzugeben; eine Kollegin oder ein Kollege, die Zugang brauchen, fragt das Register nach einem eigenen;
3. sich am Ende Ihrer Sitzung abzumelden;
4. dem Register mitzuteilen, wenn Ihr Konto nicht mehr gebraucht wird, zum Beispiel bei einem Stellenwechsel;
5. dem Register jeden Sicherheitsvorfall und jede unbefugte Nutzung, die Sie bemerken, sofort zu melden;
6. nur Dateien in den mit dem Register vereinbarten Formaten zu senden, frei von Viren oder anderen schädlichen Inhalten;
7. den Dienst nur für den Datenaustausch mit dem Register zu nutzen, nicht um Daten mit Dritten zu teilen oder als persönlichen Speicher.

Indem Sie Dateien über den Dienst senden, erlauben Sie dem Register, die darin enthaltenen Daten zu verarbeiten. Dateien werden nur so lange wie nötig aufbewahrt und dann gelöscht.

Das Register kann diese Bedingungen ändern; die geltende Fassung wird bei der Anmeldung und bei jedem Link angezeigt. Es gilt belgisches Recht.""",
    ),
}
